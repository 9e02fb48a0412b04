// `surge import`: streams a record CSV through the Ingest RPC, creating the
// job (if missing) and each run as it first appears.
#include <iostream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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

absl::Status EnsureJob(client::SurgeClient& client, const ImportArgs& args) {
  auto job = client.GetJob(args.job);
  if (absl::IsNotFound(job.status())) {
    return CreateJob(client, args.job, args.unit, "", {}, 0, /*json=*/false);
  }
  return job.status();
}

// CSV of measured optima: stage,stage_loss,batch_size,lr_opt,lr_opt_se.
absl::Status ImportOptima(client::SurgeClient& client, const ImportArgs& args) {
  SURGE_CLI_ASSIGN(table, TableCsv::Open(args.file, {"stage", "stage_loss", "batch_size",
                                                     "lr_opt", "lr_opt_se"}));
  absl::Status job = EnsureJob(client, args);
  if (!job.ok()) return job;
  std::vector<surge::v1::MeasuredOptimum> optima;
  while (true) {
    SURGE_CLI_ASSIGN(more, table->Next());
    if (!more) break;
    surge::v1::MeasuredOptimum& o = optima.emplace_back();
    SURGE_CLI_ASSIGN(stage, table->Int("stage"));
    SURGE_CLI_ASSIGN(stage_loss, table->Double("stage_loss"));
    SURGE_CLI_ASSIGN(batch, table->Double("batch_size"));
    SURGE_CLI_ASSIGN(lr, table->Double("lr_opt"));
    SURGE_CLI_ASSIGN(se, table->Double("lr_opt_se"));
    o.set_stage(stage);
    o.set_stage_loss(stage_loss);
    o.set_batch_size(batch);
    o.set_lr_opt(lr);
    o.set_lr_opt_se(se);
  }
  auto added = client.AddOptima(args.job, optima);
  if (!added.ok()) return added.status();
  std::cout << "imported " << added->stored() << " measured optima into job '" << args.job
            << "'\n";
  return absl::OkStatus();
}

// CSV of raw probe results: stage,stage_loss,batch_size,lr,seed,improvement.
// Each row becomes a probe run (parent stage = the row's stage) with one
// record whose loss is stage_loss - improvement.
absl::Status ImportProbes(client::SurgeClient& client, const ImportArgs& args) {
  SURGE_CLI_ASSIGN(table, TableCsv::Open(args.file, {"stage", "stage_loss", "batch_size", "lr",
                                                     "seed", "improvement"}));
  absl::Status job = EnsureJob(client, args);
  if (!job.ok()) return job;
  client::IngestSession session(client.channel(), args.job);
  ProgressBar progress("importing probes");
  int64_t rows = 0;
  while (true) {
    SURGE_CLI_ASSIGN(more, table->Next());
    if (!more) break;
    SURGE_CLI_ASSIGN(stage, table->Int("stage"));
    SURGE_CLI_ASSIGN(stage_loss, table->Double("stage_loss"));
    SURGE_CLI_ASSIGN(batch, table->Int("batch_size"));
    SURGE_CLI_ASSIGN(lr, table->Double("lr"));
    SURGE_CLI_ASSIGN(seed, table->Int("seed"));
    SURGE_CLI_ASSIGN(improvement, table->Double("improvement"));
    surge::v1::Run run;
    run.set_name(absl::StrFormat("probe-s%d-b%d-lr%.6g-seed%d", stage, batch, lr, seed));
    run.set_batch_size(batch);
    run.set_base_lr(lr);
    run.set_protocol(surge::v1::PROTOCOL_PROBE);
    run.mutable_parent()->set_checkpoint_step(stage);
    run.mutable_parent()->set_loss(stage_loss);
    (*run.mutable_labels())["seed"] = absl::StrCat(seed);
    auto created = client.CreateRun(args.job, run);
    if (!created.ok()) {
      return absl::Status(created.status().code(),
                          absl::StrCat(args.file, ":", table->line(), ": creating probe run: ",
                                       created.status().message()));
    }
    surge::v1::Record record;
    record.set_run(run.name());
    record.set_step(1);
    record.set_examples(batch);
    record.set_lr(lr);
    record.set_loss(stage_loss - improvement);
    record.set_eval_loss(stage_loss - improvement);
    absl::Status appended = session.Append(std::move(record), absl::Seconds(args.timeout_s));
    if (!appended.ok()) return appended;
    ++rows;
    progress.Update(0, 0, rows, "probes");
  }
  absl::Status flushed = session.Close(absl::Seconds(args.timeout_s));
  progress.Finish();
  if (!flushed.ok()) return flushed;
  std::cout << "imported " << rows << " probe results into job '" << args.job << "' as "
            << rows << " probe runs\n";
  return absl::OkStatus();
}

#undef SURGE_CLI_ASSIGN

}  // namespace

absl::Status Import(client::SurgeClient& client, const ImportArgs& args) {
  auto header = ReadHeader(args.file);
  if (!header.ok()) return header.status();
  std::vector<std::string> columns = absl::StrSplit(*header, ',');
  auto has = [&](const char* name) {
    for (auto& c : columns) {
      if (absl::StripAsciiWhitespace(c) == name) return true;
    }
    return false;
  };
  if (has("lr_opt")) return ImportOptima(client, args);
  if (has("improvement")) return ImportProbes(client, args);

  auto reader = CsvRecordReader::Open(args.file);
  if (!reader.ok()) return reader.status();

  auto job = client.GetJob(args.job);
  if (absl::IsNotFound(job.status())) {
    absl::Status created = CreateJob(client, args.job, args.unit, "", {}, 0, /*json=*/false);
    if (!created.ok()) return created;
  } else if (!job.ok()) {
    return job.status();
  }

  client::IngestOptions options;
  options.batch_records = args.batch_records;
  client::IngestSession session(client.channel(), args.job, options);
  const absl::Duration timeout = absl::Seconds(args.timeout_s);

  absl::flat_hash_map<std::string, int64_t> run_batch;  // run -> batch size
  ProgressBar progress("importing");
  absl::Time start = absl::Now();
  CsvRow row;
  int64_t rows = 0;
  while (true) {
    auto more = (*reader)->Next(row);
    if (!more.ok()) return more.status();
    if (!*more) break;
    auto it = run_batch.find(row.record.run());
    if (it == run_batch.end()) {
      surge::v1::Run run;
      run.set_name(row.record.run());
      run.set_batch_size(row.batch_size);
      run.set_protocol(surge::v1::PROTOCOL_PLAIN);
      auto created = client.CreateRun(args.job, run);
      if (!created.ok()) {
        return absl::Status(created.status().code(),
                            absl::StrCat(args.file, ":", row.line, ": creating run '",
                                         run.name(), "': ", created.status().message()));
      }
      it = run_batch.emplace(row.record.run(), row.batch_size).first;
    } else if (it->second != row.batch_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          args.file, ":", row.line, ": run '", row.record.run(), "' has batch_size ", it->second,
          " in earlier rows, ", row.batch_size, " here; a run has one batch size"));
    }
    absl::Status appended = session.Append(std::move(row.record), timeout);
    if (!appended.ok()) return appended;
    ++rows;
    if ((rows & 4095) == 0) {
      progress.Update(static_cast<double>((*reader)->bytes_read()),
                      static_cast<double>((*reader)->file_size()), rows, "rows");
    }
  }
  absl::Status flushed = session.Close(timeout);
  progress.Update(1, 1, rows, "rows", /*force=*/true);
  progress.Finish();
  if (!flushed.ok()) return flushed;

  client::IngestStats stats = session.stats();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::cout << absl::StrFormat(
      "imported %d rows into job '%s' (%d runs): %d new, %d already stored; %.1f s, %.0f rows/s\n",
      rows, args.job, run_batch.size(), stats.stored_records, stats.duplicate_records, seconds,
      seconds > 0 ? static_cast<double>(rows) / seconds : 0.0);
  return absl::OkStatus();
}

}  // namespace surge::cli
