// Implementation of HttpServer (see http_server.h): routes, the SSE stream of
// fits, static files and the listener thread.
#include "server/http/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/http/api_error.h"
#include "server/http/static_assets.h"

namespace surge::http {
namespace {

constexpr char kJson[] = "application/json";

void SendJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body, kJson);
}

void SendError(httplib::Response& res, const absl::Status& status, int http_status = 0) {
  SendJson(res, http_status ? http_status : HttpStatusFor(status.code()), ErrorJson(status));
}

// "id: <version>\nevent: fit\ndata: <Fit JSON>\n\n" (the JSON is one line).
std::string FitEvent(const surge::v1::Fit& fit) {
  absl::StatusOr<std::string> json = ToJson(fit);
  if (!json.ok()) return absl::StrCat("event: error\ndata: ", ErrorJson(json.status()), "\n\n");
  return absl::StrCat("id: ", fit.version(), "\nevent: fit\ndata: ", *json, "\n\n");
}

}  // namespace

std::string AcceptEncodingWithoutBrotli(const std::string& accept_encoding) {
  std::vector<std::string> kept;
  for (absl::string_view part : absl::StrSplit(accept_encoding, ',')) {
    absl::string_view coding = absl::StripAsciiWhitespace(part);
    absl::string_view name = coding.substr(0, coding.find(';'));
    if (absl::StripAsciiWhitespace(name) != "br" && !coding.empty()) {
      kept.emplace_back(coding);
    }
  }
  return absl::StrJoin(kept, ", ");
}

std::string HostName(const std::string& host_header) {
  std::string host = absl::AsciiStrToLower(absl::StripAsciiWhitespace(host_header));
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string::npos ? host : host.substr(1, close - 1);
  }
  size_t colon = host.find(':');
  return colon == std::string::npos ? host : host.substr(0, colon);
}

absl::Status ParseHostPort(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http listen address must be host:port, got '", listen, "'"));
  }
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

HttpServer::HttpServer(const HttpOptions& options, core::SurgeCore* core,
                       metrics::ServerMetrics* metrics)
    : options_(options), core_(core), metrics_(metrics), api_(core),
      server_(std::make_unique<GuardedServer>(options.limits)) {
  for (const StaticAsset& asset : StaticAssets()) {
    assets_[asset.name] = std::string(asset.data, asset.size);
  }
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                              core::SurgeCore* core,
                                                              metrics::ServerMetrics* metrics) {
  std::string host;
  int port = 0;
  absl::Status parsed = ParseHostPort(options.listen, &host, &port);
  if (!parsed.ok()) return parsed;
  std::unique_ptr<HttpServer> s(new HttpServer(options, core, metrics));
  if (options.tls.enabled()) {
    absl::Status tls = static_cast<GuardedServer*>(s->server_.get())->EnableTls(options.tls);
    if (!tls.ok()) return tls;
  }
  int threads = options.threads;
  s->server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default sets SO_REUSEPORT, which would let a second server share
  // the port silently; SO_REUSEADDR alone only allows a quick restart.
  s->server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s->server_->set_default_headers({
      {"X-Content-Type-Options", "nosniff"},
      {"Content-Security-Policy",
       "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"},
  });
  // Debian's cpp-httplib (0.11, built with brotli) answers any client that
  // accepts "br" with brotli at quality 11: ~200 ms of CPU per 185 KB JSON
  // page on the 2-core VM, against ~10 ms for gzip, which made the page of a
  // job with 140 full runs take 14 s to load. Offer it gzip only. The request
  // object is httplib's own mutable one, passed to handlers as const.
  HttpServer* self = s.get();
  s->server_->set_pre_routing_handler([self](const httplib::Request& req,
                                             httplib::Response& res) {
    GuardedServer::RequestStarted();  // headers in: no header deadline while answering
    if (req.path != "/healthz" && !self->HostAllowed(req.get_header_value("Host"))) {
      res.status = 421;
      res.set_content(absl::StrCat("Host '", req.get_header_value("Host").substr(0, 200),
                                   "' is not served here (allowed: ",
                                   absl::StrJoin(self->options_.allowed_hosts, ", "),
                                   "; see --http_allowed_hosts)\n"),
                      "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    auto& headers = const_cast<httplib::Request&>(req).headers;
    auto it = headers.find("Accept-Encoding");
    if (it != headers.end()) {
      it->second = AcceptEncodingWithoutBrotli(it->second);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s->AddRoutes();
  if (port == 0) {
    s->port_ = s->server_->bind_to_any_port(host);
  } else if (s->server_->bind_to_port(host, port)) {
    s->port_ = port;
  } else {
    s->port_ = -1;
  }
  if (s->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", options.listen, " (address in use or invalid)"));
  }
  httplib::Server* server = s->server_.get();
  auto ended = std::make_shared<std::atomic<bool>>(false);
  s->thread_ = std::thread([server, ended] {
    server->listen_after_bind();
    *ended = true;
  });
  // stop() is a no-op until the listen loop runs: wait for it, so that an
  // immediate Stop() cannot leave the thread listening forever.
  while (!server->is_running() && !*ended) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (*ended) return absl::InternalError("HTTP listener ended at start");
  return s;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpServer::Handler HttpServer::Timed(const std::string& route, Handler handler) {
  return [this, route, handler](const httplib::Request& req, httplib::Response& res) {
    absl::Time start = absl::Now();
    handler(req, res);
    metrics_->ObserveHttp(route, res.status < 0 ? 200 : res.status, absl::Now() - start);
  };
}

bool HttpServer::HostAllowed(const std::string& host_header) const {
  if (options_.allowed_hosts.empty()) return true;
  const std::string host = HostName(host_header);
  for (const std::string& allowed : options_.allowed_hosts) {
    if (host == allowed) return true;
  }
  return false;
}

std::optional<core::Caller> HttpServer::Authenticate(const httplib::Request& req,
                                                     httplib::Response& res) {
  absl::StatusOr<core::Caller> caller =
      core_->Authenticate(req.get_header_value("Authorization"));
  if (caller.ok()) return *caller;
  res.set_header("WWW-Authenticate", "Bearer realm=\"surge\"");
  SendError(res, caller.status());
  return std::nullopt;
}

void HttpServer::ApiGet(
    const std::string& route, const std::string& pattern,
    std::function<absl::StatusOr<std::string>(const httplib::Request&, const core::Caller&)>
        call) {
  server_->Get(pattern, Timed(route, [this, call](const httplib::Request& req,
                                                  httplib::Response& res) {
                 std::optional<core::Caller> caller = Authenticate(req, res);
                 if (!caller) return;
                 absl::StatusOr<std::string> body = call(req, *caller);
                 if (body.ok()) {
                   SendJson(res, 200, *body);
                 } else {
                   SendError(res, body.status());
                 }
               }));
}

void HttpServer::AddRoutes() {
  const std::string job = "/api/v1/jobs/([^/]+)";
  ApiGet("jobs", "/api/v1/jobs", [this](const httplib::Request& req, const core::Caller& caller) {
    return api_.ListJobs(req.params, caller);
  });
  ApiGet("job", job, [this](const httplib::Request& req, const core::Caller& caller) {
    return api_.GetJob(req.matches[1], req.params, caller);
  });
  ApiGet("runs", job + "/runs", [this](const httplib::Request& req, const core::Caller& caller) {
    return api_.ListRuns(req.matches[1], req.params, caller);
  });
  ApiGet("records", job + "/records", [this](const httplib::Request& req, const core::Caller& caller) {
    return api_.ListRecords(req.matches[1], req.params, caller);
  });
  ApiGet("fit", job + "/fit", [this](const httplib::Request& req, const core::Caller& caller) {
    return api_.GetFit(req.matches[1], req.params, caller);
  });
  ApiGet("advice", job + "/advice", [this](const httplib::Request& req, const core::Caller& caller) {
    return api_.GetAdvice(req.matches[1], req.params, caller);
  });
  server_->Get(job + "/fit/events",
               Timed("fit_events", [this](const httplib::Request& req, httplib::Response& res) {
                 std::optional<core::Caller> caller = Authenticate(req, res);
                 if (!caller) return;
                 absl::Status query = CheckQuery(req.params, {});
                 if (!query.ok()) return SendError(res, query);
                 StreamFits(req.matches[1], *caller, res);
               }));
  server_->Get("/api/.*", Timed("api_unknown", [](const httplib::Request& req,
                                                  httplib::Response& res) {
                 SendError(res, absl::NotFoundError(absl::StrCat(
                                    "no API endpoint ", req.path,
                                    " (see docs/dashboard.md for the routes)")));
               }));
  server_->Get("/metrics", Timed("metrics", [this](const httplib::Request& req,
                                                   httplib::Response& res) {
                 if (!Authenticate(req, res)) return;  // any valid token
                 res.status = 200;
                 res.set_content(metrics_->Render(), "text/plain; version=0.0.4; charset=utf-8");
               }));
  server_->Get("/healthz", Timed("healthz", [this](const httplib::Request&,
                                                   httplib::Response& res) {
                 bool serving = !stopping_ && !core_->stopping();
                 res.status = serving ? 200 : 503;
                 res.set_content(serving ? "ok\n" : "shutting down\n", "text/plain");
               }));
  server_->Get("/", Timed("page", [this](const httplib::Request&, httplib::Response& res) {
                 ServeAsset("index.html", res);
               }));
  server_->Get("/jobs/([^/]+)", Timed("page", [this](const httplib::Request&,
                                                     httplib::Response& res) {
                 ServeAsset("job.html", res);
               }));
  server_->Get("/static/([A-Za-z0-9._-]+)",
               Timed("static", [this](const httplib::Request& req, httplib::Response& res) {
                 ServeAsset(req.matches[1], res);
               }));
  server_->Get(".*", Timed("not_found", [](const httplib::Request& req,
                                           httplib::Response& res) {
                 res.status = 404;
                 res.set_content(absl::StrCat("404 not found: ", req.path, "\n"), "text/plain");
               }));
  // Read-only: every other method is refused.
  Handler refuse = Timed("method_not_allowed", [](const httplib::Request& req,
                                                  httplib::Response& res) {
    res.set_header("Allow", "GET, HEAD");
    SendError(res,
              absl::UnimplementedError(absl::StrCat(
                  req.method, " is not allowed: the HTTP API is read-only (use gRPC to write)")),
              405);
  });
  server_->Post(".*", refuse);
  server_->Put(".*", refuse);
  server_->Patch(".*", refuse);
  server_->Delete(".*", refuse);
  server_->Options(".*", refuse);
}

void HttpServer::ServeAsset(const std::string& name, httplib::Response& res) {
  std::string body;
  if (!options_.static_dir.empty()) {
    std::ifstream in(options_.static_dir + "/" + name, std::ios::binary);
    if (in) {
      std::stringstream buffer;
      buffer << in.rdbuf();
      body = buffer.str();
    } else {
      res.status = 404;
      res.set_content(absl::StrCat("404 not found: ", name, "\n"), "text/plain");
      return;
    }
  } else {
    auto it = assets_.find(name);
    if (it == assets_.end()) {
      res.status = 404;
      res.set_content(absl::StrCat("404 not found: ", name, "\n"), "text/plain");
      return;
    }
    body = it->second;
  }
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_content(body, ContentTypeFor(name));
}

void HttpServer::StreamFits(const std::string& job, const core::Caller& caller,
                            httplib::Response& res) {
  absl::StatusOr<std::shared_ptr<const core::FitEntry>> latest = core_->LatestFit(job, caller);
  if (!latest.ok()) return SendError(res, latest.status());
  if (open_streams_.fetch_add(1) >= options_.max_fit_streams) {
    open_streams_.fetch_sub(1);
    return SendError(res, absl::UnavailableError(absl::StrCat(
                              "too many live fit streams (", options_.max_fit_streams,
                              "); poll /api/v1/jobs/", job, "/fit instead")));
  }
  metrics_->AddFitStreams(1);

  struct StreamState {
    std::shared_ptr<const core::FitEntry> pending;  // to send next
    int64_t version = -1;                           // last sent
    absl::Time last_write = absl::Now();
  };
  auto state = std::make_shared<StreamState>();
  state->pending = *latest;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, state](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& text) {
          state->last_write = absl::Now();
          return sink.write(text.data(), text.size());
        };
        if (state->pending != nullptr) {
          state->version = state->pending->proto.version();
          std::string event = FitEvent(state->pending->proto);
          state->pending = nullptr;
          return write(event);
        }
        if (!stopping_ && !core_->stopping()) {
          state->pending = core_->WaitNewerFit(job, state->version, absl::Seconds(1));
        }
        if (stopping_ || core_->stopping()) {
          write("event: shutdown\ndata: {}\n\n");
          sink.done();
          return true;
        }
        if (state->pending == nullptr &&
            absl::Now() - state->last_write >= options_.stream_keepalive) {
          return write(": keepalive\n\n");
        }
        return true;
      },
      [this](bool) {
        open_streams_.fetch_sub(1);
        metrics_->AddFitStreams(-1);
      });
}

}  // namespace surge::http
