// Content types of the dashboard's static files (see static_assets.h).
#include "server/http/static_assets.h"

#include "absl/strings/match.h"

namespace surge::http {

std::string ContentTypeFor(const std::string& name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js") || absl::EndsWith(name, ".mjs")) {
    return "text/javascript; charset=utf-8";
  }
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(name, ".png")) return "image/png";
  if (absl::EndsWith(name, ".json")) return "application/json";
  return "application/octet-stream";
}

}  // namespace surge::http
