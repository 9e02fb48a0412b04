// `surge import`: streams a record CSV through the Ingest RPC, creating the
// job (if missing) and each run as it first appears.
#include <iostream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/cli/commands.h"
#include "client/cli/csv_reader.h"
#include "client/cli/format.h"
#include "client/cpp/ingest_session.h"

namespace surge::cli {

absl::Status Import(client::SurgeClient& client, const ImportArgs& args) {
  auto reader = CsvRecordReader::Open(args.file);
  if (!reader.ok()) return reader.status();

  auto job = client.GetJob(args.job);
  if (absl::IsNotFound(job.status())) {
    absl::Status created = CreateJob(client, args.job, args.unit, "", /*json=*/false);
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
