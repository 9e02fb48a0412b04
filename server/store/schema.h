// The SQLite schema of surge as an ordered list of forward migrations.
// Migration i (0-based) brings a database from schema version i to i + 1.
// Never edit a released migration: append a new one.
#ifndef SURGE_SERVER_STORE_SCHEMA_H_
#define SURGE_SERVER_STORE_SCHEMA_H_

#include <vector>

namespace surge::store {

// Returns the migrations in order; the schema version is their count.
const std::vector<const char*>& Migrations();

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_SCHEMA_H_
