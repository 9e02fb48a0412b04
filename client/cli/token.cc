// `surge token new`: a random bearer token and the line of a server's token
// file that admits it. The file holds only the token's SHA-256, so the token
// is printed once here and never stored by surge.
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <iostream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/cli/commands.h"

namespace surge::cli {

absl::Status NewToken(const std::string& tenant, const std::string& role) {
  // 256 random bits, as unpadded base64url.
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("OpenSSL's RAND_bytes gave no random bytes");
  }
  const std::string token = absl::StrCat(
      "surge_", absl::WebSafeBase64Escape(absl::string_view(
                    reinterpret_cast<const char*>(bytes), sizeof(bytes))));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  const std::string hash = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
  std::cout << "token: " << token << "\n"
            << "line:  " << tenant << " " << role << " sha256:" << hash << "\n";
  std::cerr << "Add the line to the server's token file and send SIGHUP to surge-server; "
               "give the token to its user (SURGE_TOKEN). It is not shown again.\n";
  return absl::OkStatus();
}

}  // namespace surge::cli
