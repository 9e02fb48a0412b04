// Implementation of the CLI's read commands, job management and health. `import`
// lives in import.cc.
#include <cstdio>
#include <iostream>

#include <grpcpp/client_context.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli/commands.h"
#include "client/cli/csv_reader.h"
#include "client/cli/format.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace surge::cli {
namespace {

std::string UnitName(surge::v1::BatchUnit unit) {
  switch (unit) {
    case surge::v1::BATCH_UNIT_EXAMPLES: return "examples";
    case surge::v1::BATCH_UNIT_TOKENS: return "tokens";
    default: return "?";
  }
}

std::string ProtocolName(surge::v1::Protocol p) {
  switch (p) {
    case surge::v1::PROTOCOL_PLAIN: return "plain";
    case surge::v1::PROTOCOL_PROBE: return "probe";
    case surge::v1::PROTOCOL_FULL_RUN: return "full-run";
    default: return "?";
  }
}

}  // namespace

absl::Status ListJobs(client::SurgeClient& client, bool json) {
  auto response = client.ListJobs();
  if (!response.ok()) return response.status();
  if (json) {
    std::cout << ToJson(*response) << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {{"JOB", "UNIT", "RUNS", "RECORDS", "UPDATED (UTC)"}};
  for (const auto& job : response->jobs()) {
    rows.push_back({job.name(), UnitName(job.batch_unit()), absl::StrCat(job.run_count()),
                    absl::StrCat(job.record_count()), FormatTimeUs(job.update_time_us())});
  }
  if (response->jobs_size() == 0) {
    std::cout << "no jobs yet (create one with `surge job create NAME` or `surge import`)\n";
    return absl::OkStatus();
  }
  PrintTable(rows);
  return absl::OkStatus();
}

absl::Status ShowJob(client::SurgeClient& client, const std::string& name, bool json) {
  auto job = client.GetJob(name);
  if (!job.ok()) return job.status();
  if (json) {
    std::cout << ToJson(*job) << "\n";
    return absl::OkStatus();
  }
  PrintTable({{"job:", job->name()},
              {"unit:", UnitName(job->batch_unit())},
              {"description:", job->description().empty() ? "-" : job->description()},
              {"runs:", absl::StrCat(job->run_count())},
              {"records:", absl::StrCat(job->record_count())},
              {"created (UTC):", FormatTimeUs(job->create_time_us())},
              {"updated (UTC):", FormatTimeUs(job->update_time_us())}});
  return absl::OkStatus();
}

absl::Status CreateJob(client::SurgeClient& client, const std::string& name,
                       const std::string& unit, const std::string& description,
                       const std::vector<double>& targets, int k, bool json) {
  surge::v1::Job job;
  job.set_name(name);
  job.set_description(description);
  for (double t : targets) job.add_target_losses(t);
  job.set_k_steps(k);
  if (unit == "examples") {
    job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  } else if (unit == "tokens") {
    job.set_batch_unit(surge::v1::BATCH_UNIT_TOKENS);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--unit: must be 'examples' or 'tokens', got '", unit, "'"));
  }
  auto created = client.CreateJob(job);
  if (!created.ok()) return created.status();
  if (json) {
    std::cout << ToJson(*created) << "\n";
  } else {
    std::cout << "created job '" << created->name() << "' (batch unit: "
              << UnitName(created->batch_unit()) << ")\n";
  }
  return absl::OkStatus();
}

absl::Status DeleteJob(client::SurgeClient& client, const std::string& name, bool json) {
  auto deleted = client.DeleteJob(name);
  if (!deleted.ok()) return deleted.status();
  if (json) {
    std::cout << ToJson(*deleted) << "\n";
  } else {
    std::cout << "deleted job '" << name << "' with " << deleted->runs_deleted() << " runs and "
              << deleted->records_deleted() << " records\n";
  }
  return absl::OkStatus();
}

absl::Status DeleteRun(client::SurgeClient& client, const std::string& job,
                       const std::string& run, bool json) {
  auto deleted = client.DeleteRun(job, run);
  if (!deleted.ok()) return deleted.status();
  if (json) {
    std::cout << ToJson(*deleted) << "\n";
  } else {
    std::cout << "deleted run '" << run << "' of job '" << job << "' with "
              << deleted->records_deleted() << " records (the job is refitted)\n";
  }
  return absl::OkStatus();
}

absl::Status ListRuns(client::SurgeClient& client, const std::string& job, bool json) {
  auto response = client.ListRuns(job);
  if (!response.ok()) return response.status();
  if (json) {
    std::cout << ToJson(*response) << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "BATCH", "PROTOCOL", "OPTIMIZER", "BASE_LR", "RECORDS", "LAST_STEP", "PARENT"}};
  for (const auto& run : response->runs()) {
    std::string optimizer = "-";
    if (run.has_optimizer()) {
      optimizer = absl::StrFormat("%s(%g,%g,%g)", run.optimizer().name(), run.optimizer().beta1(),
                                  run.optimizer().beta2(), run.optimizer().eps());
    }
    std::string parent = "-";
    if (run.has_parent()) {
      parent = absl::StrFormat("step %d loss %.4g", run.parent().checkpoint_step(),
                               run.parent().loss());
    }
    rows.push_back({run.name(), absl::StrCat(run.batch_size()), ProtocolName(run.protocol()),
                    optimizer, absl::StrFormat("%g", run.base_lr()),
                    absl::StrCat(run.record_count()),
                    run.last_step() < 0 ? "-" : absl::StrCat(run.last_step()), parent});
  }
  if (response->runs_size() == 0) {
    std::cout << "job '" << job << "' has no runs yet\n";
    return absl::OkStatus();
  }
  PrintTable(rows);
  return absl::OkStatus();
}

absl::Status ListRecords(client::SurgeClient& client, const std::string& job,
                         const std::string& run, const std::string& format) {
  if (format != "csv" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format: must be 'csv' or 'json', got '", format, "'"));
  }
  auto runs = client.ListRuns(job);
  if (!runs.ok()) return runs.status();
  absl::flat_hash_map<std::string, int64_t> batch_size;
  for (const auto& r : runs->runs()) batch_size[r.name()] = r.batch_size();

  const bool csv = format == "csv";
  if (csv) std::printf("%s\n", CsvRecordReader::CanonicalHeader());
  std::string out;
  return client.ForEachRecordPage(
      job, run, 50000, [&](const surge::v1::ListRecordsResponse& page) {
        out.clear();
        for (const auto& r : page.records()) {
          if (!csv) {
            out += ToJson(r, /*compact=*/true);
            out += '\n';
            continue;
          }
          out += r.run();
          out += ',';
          AppendInt(out, r.step());
          out += ',';
          AppendInt(out, r.examples());
          out += ',';
          AppendInt(out, batch_size[r.run()]);
          out += ',';
          AppendDouble(out, r.lr());
          out += ',';
          AppendDouble(out, r.loss());
          out += ',';
          if (r.has_eval_loss()) AppendDouble(out, r.eval_loss());
          out += ',';
          if (r.has_grad_stats()) {
            AppendDouble(out, r.grad_stats().grad_sq_small());
            out += ',';
            AppendDouble(out, r.grad_stats().grad_sq_big());
            out += ',';
            AppendInt(out, r.grad_stats().b_small());
            out += ',';
            AppendInt(out, r.grad_stats().b_big());
          } else {
            out += ",,,";
          }
          out += '\n';
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
        if (std::ferror(stdout)) return absl::UnavailableError("writing to stdout failed");
        return absl::OkStatus();
      });
}

absl::Status Health(const client::ClientOptions& options, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(client::MakeChannel(options));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.call_timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return client::FromGrpcStatus(status);
  const std::string& answer =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::cout << answer << "\n";
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrCat("the server answers ", answer));
  }
  return absl::OkStatus();
}

}  // namespace surge::cli
