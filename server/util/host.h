// Host names of listen addresses: which are loopback (reachable only from
// this machine), which are wildcards (every interface). Header-only.
#ifndef SURGE_SERVER_UTIL_HOST_H_
#define SURGE_SERVER_UTIL_HOST_H_

#include <arpa/inet.h>

#include <string>

namespace surge::util {

// The host of "host:port" ("[v6]:port" -> "v6"); the whole text without a colon.
inline std::string HostOf(const std::string& listen) {
  size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

// localhost, 127.0.0.0/8 and ::1.
inline bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    static const in6_addr kLoopback = IN6ADDR_LOOPBACK_INIT;
    return IN6_ARE_ADDR_EQUAL(&v6, &kLoopback);
  }
  return false;
}

// An address that listens on every interface: empty, 0.0.0.0, ::, [::].
inline bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "*";
}

}  // namespace surge::util

#endif  // SURGE_SERVER_UTIL_HOST_H_
