// TlsFiles: the PEM files of a TLS server, shared by the gRPC and the HTTP
// port (each reads them its own way). Header-only.
#ifndef SURGE_SERVER_UTIL_TLS_FILES_H_
#define SURGE_SERVER_UTIL_TLS_FILES_H_

#include <string>

namespace surge::util {

// The server's certificate chain and key, and optionally the CA that client
// certificates must be signed by (mutual TLS).
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // empty: no client certificates asked for
  bool enabled() const { return !cert_file.empty(); }
};

}  // namespace surge::util

#endif  // SURGE_SERVER_UTIL_TLS_FILES_H_
