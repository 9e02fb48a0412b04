// Implementation of tokens, roles and the Authenticator (see auth.h).
#include "server/core/auth.h"

#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/validation.h"

namespace surge::core {
namespace {

constexpr char kHashPrefix[] = "sha256:";

absl::string_view PermissionName(Permission p) {
  switch (p) {
    case Permission::kRead: return "read jobs";
    case Permission::kWrite: return "create jobs and runs or send records";
    case Permission::kDelete: return "delete jobs or runs";
  }
  return "?";
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader: return "reader";
    case Role::kWriter: return "writer";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  if (name == "reader") return Role::kReader;
  if (name == "writer") return Role::kWriter;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "' (reader, writer or admin)"));
}

absl::Status CheckRole(const Caller& caller, Permission needed) {
  if (static_cast<int>(caller.role) >= static_cast<int>(needed)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "role '", RoleName(caller.role), "' of tenant '", caller.tenant, "' may not ",
      PermissionName(needed), "; that needs a token with role '",
      RoleName(static_cast<Role>(needed)), "' or above"));
}

std::string Sha256Hex(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text) {
  TokenTable table;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no, ": ", what,
          " (each line: TENANT ROLE sha256:HEX; make one with `surge token new`)"));
    };
    if (fields.size() != 3) return bad(absl::StrCat("has ", fields.size(), " fields, not 3"));
    Caller caller;
    caller.tenant = std::string(fields[0]);
    if (!ValidateName("tenant", caller.tenant).ok()) {
      return bad(absl::StrCat("tenant '", caller.tenant,
                              "' must be 1-128 characters of [A-Za-z0-9._-]"));
    }
    absl::StatusOr<Role> role = ParseRole(fields[1]);
    if (!role.ok()) return bad(role.status().message());
    caller.role = *role;
    absl::string_view hash = fields[2];
    if (!absl::ConsumePrefix(&hash, kHashPrefix) || hash.size() != 64 || !IsLowerHex(hash)) {
      return bad("the hash must be sha256: and 64 lower-case hex digits, not a token");
    }
    if (!table.by_hash_.emplace(std::string(hash), caller).second) {
      return bad("repeats the hash of an earlier line");
    }
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("token file ", path, ": cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<TokenTable> table = Parse(text.str());
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ", ", table.status().message()));
  }
  return table;
}

absl::StatusOr<Caller> TokenTable::Lookup(absl::string_view token) const {
  auto it = by_hash_.find(Sha256Hex(token));
  if (it == by_hash_.end()) {
    return absl::UnauthenticatedError("unknown or revoked token; ask the server's admin for one");
  }
  return it->second;
}

absl::Status Authenticator::Reload() {
  if (token_file_.empty()) return absl::OkStatus();
  absl::StatusOr<TokenTable> table = TokenTable::Load(token_file_);
  if (!table.ok()) return table.status();
  auto shared = std::make_shared<const TokenTable>(std::move(*table));
  std::lock_guard<std::mutex> lock(mu_);
  table_ = std::move(shared);
  return absl::OkStatus();
}

absl::StatusOr<Caller> Authenticator::Authenticate(absl::string_view authorization) const {
  if (token_file_.empty()) return Caller::Local();
  std::shared_ptr<const TokenTable> table;
  {
    std::lock_guard<std::mutex> lock(mu_);
    table = table_;
  }
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "this server needs a token: pass --token or set SURGE_TOKEN (sent as "
        "'authorization: Bearer <token>')");
  }
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization header must be 'Bearer <token>'");
  }
  token = absl::StripAsciiWhitespace(token);
  if (table == nullptr) return absl::UnauthenticatedError("no tokens loaded");
  return table->Lookup(token);
}

}  // namespace surge::core
