// The dashboard's static files (server/http/static/*), embedded into the
// binary at build time by embed_static.cmake, and their content types.
#ifndef SURGE_SERVER_HTTP_STATIC_ASSETS_H_
#define SURGE_SERVER_HTTP_STATIC_ASSETS_H_

#include <cstddef>
#include <string>
#include <vector>

namespace surge::http {

struct StaticAsset {
  const char* name;  // file name, e.g. "job.html"
  const char* data;
  size_t size;
};

// Every embedded file (generated source).
const std::vector<StaticAsset>& StaticAssets();

// "text/html; charset=utf-8", "text/javascript; charset=utf-8", ... by extension.
std::string ContentTypeFor(const std::string& name);

}  // namespace surge::http

#endif  // SURGE_SERVER_HTTP_STATIC_ASSETS_H_
