// Forward migrations of the surge database. See docs/design.md for the
// meaning of every table and column.
#include "server/store/schema.h"

namespace surge::store {

const std::vector<const char*>& Migrations() {
  static const std::vector<const char*> kMigrations = {
      // Version 1: jobs, runs, run labels, records. Job and run ids are
      // AUTOINCREMENT: an id is never reused after a delete, so a stale id
      // (cached by an ingest stream) fails its foreign key instead of
      // landing in another job's run.
      R"sql(
CREATE TABLE jobs (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  name           TEXT    NOT NULL UNIQUE,
  batch_unit     INTEGER NOT NULL,
  description    TEXT    NOT NULL DEFAULT '',
  create_time_us INTEGER NOT NULL,
  update_time_us INTEGER NOT NULL
);
CREATE TABLE runs (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  name               TEXT    NOT NULL,
  batch_size         INTEGER NOT NULL,
  protocol           INTEGER NOT NULL,
  optimizer_name     TEXT,
  beta1              REAL,
  beta2              REAL,
  adam_eps           REAL,
  weight_decay       REAL,
  base_lr            REAL    NOT NULL,
  parent_step        INTEGER,
  parent_loss        REAL,
  parent_base_run    TEXT,
  target_loss        REAL,
  create_time_us     INTEGER NOT NULL,
  update_time_us     INTEGER NOT NULL,
  record_count       INTEGER NOT NULL DEFAULT 0,
  last_step          INTEGER NOT NULL DEFAULT -1,
  UNIQUE (job_id, name)
);
CREATE TABLE run_labels (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key    TEXT    NOT NULL,
  value  TEXT    NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE records (
  run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step          INTEGER NOT NULL,
  examples      INTEGER NOT NULL,
  lr            REAL    NOT NULL,
  loss          REAL    NOT NULL,
  eval_loss     REAL,
  grad_sq_small REAL,
  grad_sq_big   REAL,
  b_small       INTEGER,
  b_big         INTEGER,
  PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
)sql",
      // Version 2: measured optima (AddOptima) and the history of fits.
      R"sql(
CREATE TABLE measured_optima (
  job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  stage_id   INTEGER NOT NULL,
  batch_size REAL    NOT NULL,
  stage_loss REAL    NOT NULL,
  lr_opt     REAL    NOT NULL,
  lr_opt_se  REAL    NOT NULL,
  PRIMARY KEY (job_id, stage_id, batch_size)
) WITHOUT ROWID;
CREATE TABLE fits (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id          INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  version         INTEGER NOT NULL,
  create_time_us  INTEGER NOT NULL,
  ok              INTEGER NOT NULL,
  probe_points    INTEGER NOT NULL,
  measured_optima INTEGER NOT NULL,
  loss_points     INTEGER NOT NULL,
  stages          INTEGER NOT NULL,
  records_seen    INTEGER NOT NULL,
  fit_us          INTEGER NOT NULL,
  fit             BLOB    NOT NULL,
  UNIQUE (job_id, version)
);
)sql",
      // Version 3: a job's declared evidence settings for plain runs: target
      // losses (comma-separated, empty: chosen from the data) and k (0: 10).
      R"sql(
ALTER TABLE jobs ADD COLUMN target_losses TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN k_steps INTEGER NOT NULL DEFAULT 0;
)sql",
      // Version 4: the tenant a job belongs to (docs/security.md); jobs made
      // before tokens existed, or on a server without them, are "default"'s.
      R"sql(
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX jobs_by_tenant ON jobs (tenant, name);
)sql",
  };
  return kMigrations;
}

}  // namespace surge::store
