// Who may do what: bearer tokens, tenants and roles (docs/security.md).
//
// A token file holds one line per token, its SHA-256 (never the token):
//
//   # tenant   role    hash of the token
//   team-a     writer  sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//
// Every call names a Caller: the tenant and role of its token, or, on a
// server without a token file (which listens on loopback only), the local
// admin of tenant "default". Jobs belong to the tenant that created them;
// other tenants' jobs answer NOT_FOUND exactly like missing ones.
//
// Roles, each allowed what the one before it may do and more:
//   reader: read jobs, runs, records, fits and advice, watch fits;
//   writer: also create jobs and runs, stream records, add optima;
//   admin:  also delete jobs and runs.
#ifndef SURGE_SERVER_CORE_AUTH_H_
#define SURGE_SERVER_CORE_AUTH_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace surge::core {

enum class Role { kReader = 0, kWriter = 1, kAdmin = 2 };

// What a call needs; a role allows every permission up to its own.
enum class Permission { kRead = 0, kWrite = 1, kDelete = 2 };

// The tenant jobs belong to when the server runs without tokens.
inline constexpr char kDefaultTenant[] = "default";

struct Caller {
  std::string tenant = kDefaultTenant;
  Role role = Role::kAdmin;
  // The local admin: every call on a server without a token file.
  static Caller Local() { return Caller{}; }
};

absl::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(absl::string_view name);

// PERMISSION_DENIED naming the role, the action and the role it needs.
absl::Status CheckRole(const Caller& caller, Permission needed);

// Lower-case hex SHA-256 of `token`.
std::string Sha256Hex(absl::string_view token);

// The tokens of one token file, by hash.
class TokenTable {
 public:
  // Parses a token file's text; INVALID_ARGUMENT naming the line otherwise.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text);
  // Reads and parses `path` (NOT_FOUND / INVALID_ARGUMENT with the path).
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The caller a bearer token stands for; UNAUTHENTICATED when unknown.
  absl::StatusOr<Caller> Lookup(absl::string_view token) const;
  size_t size() const { return by_hash_.size(); }

 private:
  absl::flat_hash_map<std::string, Caller> by_hash_;  // key: hex SHA-256
};

// Turns a request's credentials into a Caller. Without a token table every
// call is Caller::Local(); with one, a call needs "Bearer <token>" (the value
// of gRPC's `authorization` metadata or HTTP's Authorization header).
// Reload() swaps in a new table while calls run (token rotation).
class Authenticator {
 public:
  Authenticator() = default;  // no tokens: everyone is the local admin
  explicit Authenticator(std::string token_file) : token_file_(std::move(token_file)) {}

  // Loads the token file (no-op without one). Keeps the old table on error.
  absl::Status Reload();
  bool enabled() const { return !token_file_.empty(); }

  // UNAUTHENTICATED with what to do when the header is missing, malformed or
  // names no known token.
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization) const;

 private:
  const std::string token_file_;
  mutable std::mutex mu_;
  std::shared_ptr<const TokenTable> table_;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_AUTH_H_
