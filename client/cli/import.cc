// `surge import`: checks the whole CSV first (every row parsed and checked
// as the server would check it), then creates the job and the file's runs
// and streams the rows through the Ingest RPC, so that a bad file stores
// nothing. If the server still refuses a row mid-import, the error names
// that row's file line and says exactly which rows are stored.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/cli/commands.h"
#include "client/cli/csv_reader.h"
#include "client/cli/format.h"
#include "client/cli/table_csv.h"
#include "client/cpp/ingest_session.h"

namespace surge::cli {

namespace {

#define SURGE_CLI_ASSIGN(lhs, expr)          \
  auto lhs##_or = (expr);                     \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = std::move(*lhs##_or)

// Largest AddOptima request the server takes (kMaxRecordsPerBatch).
constexpr int64_t kMaxOptima = 100000;

// A server error for the terminal: its message escaped, after `prefix`.
absl::Status FromServer(const absl::Status& status, absl::string_view prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, EscapeText(status.message(), 4096)));
}

// Creates the job if it does not exist; called once the file is checked.
absl::Status EnsureJob(client::SurgeClient& client, const ImportArgs& args) {
  absl::Status job = client.GetJob(args.job).status();
  if (absl::IsNotFound(job)) {
    return CreateJob(client, args.job, args.unit, "", {}, 0, /*json=*/false);
  }
  return job.ok() ? job : FromServer(job, "");
}

// K of "records[K]" in a server message, or -1.
int64_t RecordIndexIn(absl::string_view message) {
  size_t at = message.find("records[");
  if (at == absl::string_view::npos) return -1;
  absl::string_view rest = message.substr(at + 8);
  int64_t index = -1;
  if (!absl::SimpleAtoi(rest.substr(0, rest.find(']')), &index)) return -1;
  return index;
}

// The status of a record import that stopped after rows were sent: `error`,
// the file line of the row the server refused (records[K] of the batch that
// follows the acked prefix), and exactly which rows are stored.
absl::Status StoppedImport(const std::string& path, const absl::Status& error, int64_t acked,
                           int64_t total_rows) {
  const std::string shown = EscapeText(path, 4096);
  const int64_t k = RecordIndexIn(error.message());
  std::vector<int64_t> rows = {acked};
  if (k > 0) rows.push_back(acked + k);
  absl::StatusOr<std::vector<int64_t>> lines = CsvRecordReader::LinesOfRows(path, rows);
  const int64_t first_unstored = lines.ok() ? (*lines)[0] : 0;
  const int64_t failing = !lines.ok() ? 0 : k > 0 ? (*lines)[1] : k == 0 ? first_unstored : 0;

  std::string where = failing > 0
                          ? absl::StrCat(shown, ":", failing, ": the server refused this row: ")
                          : absl::StrCat(shown, ": the import stopped: ");
  std::string stored;
  if (acked == 0) {
    stored = "stored: no rows";
  } else if (first_unstored > 0) {
    stored = absl::StrCat("stored: the ", acked, " rows before line ", first_unstored);
  } else {
    stored = absl::StrCat("stored: the first ", acked, " of ", total_rows, " rows");
  }
  std::string rest;
  if (acked < total_rows) {
    std::string from = first_unstored > 0 ? absl::StrCat("line ", first_unstored, " and after")
                                          : "the rest";
    rest = k >= 0 ? absl::StrCat("; not stored: ", from)
                  : absl::StrCat("; ", from, ": not confirmed by the server");
  }
  return absl::Status(error.code(),
                      absl::StrCat(where, EscapeText(error.message(), 4096), " [", stored, rest,
                                   "; importing the file again skips stored rows]"));
}

// CSV of measured optima: stage,stage_loss,batch_size,lr_opt,lr_opt_se. One
// AddOptima call: all rows are stored or none.
absl::Status ImportOptima(client::SurgeClient& client, const ImportArgs& args) {
  using Bound = TableCsv::Bound;
  SURGE_CLI_ASSIGN(table, TableCsv::Open(args.file, {"stage", "stage_loss", "batch_size",
                                                     "lr_opt", "lr_opt_se"}));
  std::vector<surge::v1::MeasuredOptimum> optima;
  while (true) {
    SURGE_CLI_ASSIGN(more, table->Next());
    if (!more) break;
    if (static_cast<int64_t>(optima.size()) == kMaxOptima) {
      return table->Error(absl::StrCat("more than ", kMaxOptima, " optima in one file"));
    }
    surge::v1::MeasuredOptimum& o = optima.emplace_back();
    SURGE_CLI_ASSIGN(stage, table->Int("stage", Bound::kNonNegative));
    SURGE_CLI_ASSIGN(stage_loss, table->Double("stage_loss", Bound::kPositive));
    SURGE_CLI_ASSIGN(batch, table->Double("batch_size", Bound::kPositive));
    SURGE_CLI_ASSIGN(lr, table->Double("lr_opt", Bound::kPositive));
    SURGE_CLI_ASSIGN(se, table->Double("lr_opt_se", Bound::kNonNegative));
    o.set_stage(stage);
    o.set_stage_loss(stage_loss);
    o.set_batch_size(batch);
    o.set_lr_opt(lr);
    o.set_lr_opt_se(se);
  }
  absl::Status job = EnsureJob(client, args);
  if (!job.ok()) return job;
  auto added = client.AddOptima(args.job, optima);
  if (!added.ok()) {
    return FromServer(added.status(),
                      absl::StrCat(EscapeText(args.file, 4096), ": nothing stored: "));
  }
  std::cout << "imported " << added->stored() << " measured optima into job '" << args.job
            << "'\n";
  return absl::OkStatus();
}

// One row of a probe-result CSV, checked as the server checks the probe
// run and record made of it.
struct ProbeRow {
  int64_t stage = 0;
  double stage_loss = 0;
  int64_t batch = 0;
  double lr = 0;
  int64_t seed = 0;
  double improvement = 0;
};

absl::StatusOr<ProbeRow> ReadProbeRow(const TableCsv& table) {
  using Bound = TableCsv::Bound;
  ProbeRow row;
  SURGE_CLI_ASSIGN(stage, table.Int("stage", Bound::kNonNegative));
  SURGE_CLI_ASSIGN(stage_loss, table.Double("stage_loss"));
  SURGE_CLI_ASSIGN(batch, table.Int("batch_size", Bound::kPositive));
  SURGE_CLI_ASSIGN(lr, table.Double("lr", Bound::kNonNegative));
  SURGE_CLI_ASSIGN(seed, table.Int("seed"));
  SURGE_CLI_ASSIGN(improvement, table.Double("improvement"));
  if (!std::isfinite(stage_loss - improvement)) {
    return table.Error("stage_loss - improvement (the probe's loss) is not finite");
  }
  row.stage = stage;
  row.stage_loss = stage_loss;
  row.batch = batch;
  row.lr = lr;
  row.seed = seed;
  row.improvement = improvement;
  return row;
}

// CSV of raw probe results: stage,stage_loss,batch_size,lr,seed,improvement.
// Each row becomes a probe run (parent stage = the row's stage) with one
// record whose loss is stage_loss - improvement. The file is checked whole
// before the first run is created.
absl::Status ImportProbes(client::SurgeClient& client, const ImportArgs& args) {
  const std::vector<std::string> columns = {"stage", "stage_loss", "batch_size",
                                            "lr",    "seed",       "improvement"};
  int64_t total = 0;
  {
    SURGE_CLI_ASSIGN(check, TableCsv::Open(args.file, columns));
    while (true) {
      SURGE_CLI_ASSIGN(more, check->Next());
      if (!more) break;
      absl::Status checked = ReadProbeRow(*check).status();
      if (!checked.ok()) return checked;
      ++total;
    }
  }
  absl::Status job = EnsureJob(client, args);
  if (!job.ok()) return job;

  SURGE_CLI_ASSIGN(table, TableCsv::Open(args.file, columns));
  client::IngestSession session(client.channel(), args.job);
  const absl::Duration timeout = absl::Seconds(args.timeout_s);
  ProgressBar progress("importing probes");
  int64_t rows = 0;
  // Stops the import at the current row: flushes what was sent, then says
  // how many rows are stored.
  auto stop = [&](const absl::Status& error) {
    absl::Status flushed = session.Close(timeout);
    const int64_t acked = session.stats().acked_records;
    return absl::Status(
        error.code(),
        absl::StrCat(EscapeText(args.file, 4096), ":", table->line(), ": ",
                     EscapeText(error.message(), 4096), " [stored: ", acked, " of the ", total,
                     " probe rows, ", flushed.ok() ? "those before this line" : "not confirmed",
                     "; importing the file again skips stored rows]"));
  };
  while (true) {
    SURGE_CLI_ASSIGN(more, table->Next());
    if (!more) break;
    absl::StatusOr<ProbeRow> row = ReadProbeRow(*table);
    if (!row.ok()) return stop(row.status());
    surge::v1::Run run;
    run.set_name(absl::StrFormat("probe-s%d-b%d-lr%.6g-seed%d", row->stage, row->batch, row->lr,
                                 row->seed));
    run.set_batch_size(row->batch);
    run.set_base_lr(row->lr);
    run.set_protocol(surge::v1::PROTOCOL_PROBE);
    run.mutable_parent()->set_checkpoint_step(row->stage);
    run.mutable_parent()->set_loss(row->stage_loss);
    (*run.mutable_labels())["seed"] = absl::StrCat(row->seed);
    auto created = client.CreateRun(args.job, run);
    if (!created.ok()) {
      return stop(absl::Status(created.status().code(),
                               absl::StrCat("creating probe run: ", created.status().message())));
    }
    surge::v1::Record record;
    record.set_run(run.name());
    record.set_step(1);
    record.set_examples(row->batch);
    record.set_lr(row->lr);
    record.set_loss(row->stage_loss - row->improvement);
    record.set_eval_loss(row->stage_loss - row->improvement);
    absl::Status appended = session.Append(std::move(record), timeout);
    if (!appended.ok()) return stop(appended);
    ++rows;
    progress.Update(0, 0, rows, "probes");
  }
  absl::Status flushed = session.Close(timeout);
  progress.Finish();
  if (!flushed.ok()) return stop(flushed);
  std::cout << "imported " << rows << " probe results into job '" << args.job << "' as "
            << rows << " probe runs\n";
  return absl::OkStatus();
}

// Creates `run` (a plain run) in the job; the error names its first line.
absl::Status CreatePlainRun(client::SurgeClient& client, const ImportArgs& args,
                            const CsvRun& csv_run) {
  surge::v1::Run run;
  run.set_name(csv_run.name);
  run.set_batch_size(csv_run.batch_size);
  run.set_protocol(surge::v1::PROTOCOL_PLAIN);
  absl::Status created = client.CreateRun(args.job, run).status();
  if (created.ok()) return created;
  return FromServer(created, absl::StrCat(EscapeText(args.file, 4096), ":", csv_run.first_line,
                                          ": creating run '", csv_run.name, "': "));
}

// CSV of records: pass 1 checks every row, pass 2 streams them.
absl::Status ImportRecords(client::SurgeClient& client, const ImportArgs& args) {
  absl::Time start = absl::Now();

  // Pass 1: every row parsed and checked; nothing is sent.
  int64_t total = 0;
  std::vector<CsvRun> runs;
  {
    SURGE_CLI_ASSIGN(check, CsvRecordReader::Open(args.file));
    ProgressBar progress("checking");
    CsvRow row;
    while (true) {
      SURGE_CLI_ASSIGN(more, check->Next(row));
      if (!more) break;
      if ((++total & 16383) == 0) {
        progress.Update(static_cast<double>(check->bytes_read()),
                        static_cast<double>(check->file_size()), total, "rows");
      }
    }
    progress.Finish();
    runs = check->runs();
  }

  absl::Status job = EnsureJob(client, args);
  if (!job.ok()) return job;
  for (size_t i = 0; i < runs.size(); ++i) {
    absl::Status created = CreatePlainRun(client, args, runs[i]);
    if (!created.ok()) {
      return absl::Status(created.code(),
                          absl::StrCat(created.message(), " [no records were stored",
                                       i == 0   ? ""
                                       : i == 1 ? "; 1 run created before it is empty"
                                                : absl::StrCat("; ", i,
                                                               " runs created before it are empty"),
                                       "]"));
    }
  }

  // Pass 2: the same rows, streamed.
  SURGE_CLI_ASSIGN(reader, CsvRecordReader::Open(args.file));
  client::IngestOptions options;
  options.batch_records = args.batch_records;
  // Rows are read faster than the server stores them: bound what waits.
  options.max_unacked_records = std::max<int64_t>(int64_t{64} * args.batch_records, 1 << 16);
  client::IngestSession session(client.channel(), args.job, options);
  const absl::Duration timeout = absl::Seconds(args.timeout_s);
  auto stop = [&](const absl::Status& error) {
    session.Close(timeout).IgnoreError();
    return StoppedImport(args.file, error, session.stats().acked_records, total);
  };
  ProgressBar progress("importing");
  CsvRow row;
  int64_t rows = 0;
  size_t runs_created = runs.size();
  while (true) {
    absl::StatusOr<bool> more = reader->Next(row);
    if (!more.ok()) return stop(more.status());  // the file changed since pass 1
    if (!*more) break;
    while (reader->runs().size() > runs_created) {  // likewise
      absl::Status created = CreatePlainRun(client, args, reader->runs()[runs_created++]);
      if (!created.ok()) return stop(created);
    }
    absl::Status appended = session.Append(std::move(row.record), timeout);
    if (!appended.ok()) return stop(appended);
    ++rows;
    if ((rows & 4095) == 0) {
      progress.Update(static_cast<double>(reader->bytes_read()),
                      static_cast<double>(reader->file_size()), rows, "rows");
    }
  }
  absl::Status flushed = session.Close(timeout);
  progress.Update(1, 1, rows, "rows", /*force=*/true);
  progress.Finish();
  if (!flushed.ok()) return StoppedImport(args.file, flushed, session.stats().acked_records, rows);

  client::IngestStats stats = session.stats();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::cout << absl::StrFormat(
      "imported %d rows into job '%s' (%d runs): %d new, %d already stored; %.1f s, %.0f rows/s\n",
      rows, args.job, reader->runs().size(), stats.stored_records, stats.duplicate_records,
      seconds, seconds > 0 ? static_cast<double>(rows) / seconds : 0.0);
  return absl::OkStatus();
}

#undef SURGE_CLI_ASSIGN

}  // namespace

absl::Status Import(client::SurgeClient& client, const ImportArgs& args) {
  absl::StatusOr<std::vector<std::string>> columns = ReadHeaderColumns(args.file);
  if (!columns.ok()) return columns.status();
  auto has = [&](const char* name) {
    return std::find(columns->begin(), columns->end(), name) != columns->end();
  };
  if (has("lr_opt")) return ImportOptima(client, args);
  if (has("improvement")) return ImportProbes(client, args);
  return ImportRecords(client, args);
}

}  // namespace surge::cli
