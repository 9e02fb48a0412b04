// surge: the command-line client. Parses arguments (CLI11) and runs one
// command; errors print "CODE: message" on stderr and exit 1.
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "client/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"surge: optimal learning rate for a batch size, from your training telemetry.\n"
               "Server address from --server or $SURGE_SERVER (default 127.0.0.1:50051)."};
  app.require_subcommand(1);
  std::string server = "127.0.0.1:50051";
  double timeout_s = 30;
  app.add_option("--server", server, "surge-server address host:port")
      ->envname("SURGE_SERVER");
  app.add_option("--timeout", timeout_s, "deadline of each call, seconds")->check(CLI::PositiveNumber);
  std::string token, tls_ca, tls_cert, tls_key;
  app.add_option("--token", token, "bearer token for a server with tokens (surge token new)")
      ->envname("SURGE_TOKEN");
  app.add_option("--tls_ca", tls_ca, "CA certificate (PEM) of a TLS server; connects over TLS")
      ->envname("SURGE_TLS_CA")
      ->check(CLI::ExistingFile);
  app.add_option("--tls_cert", tls_cert, "client certificate (PEM) for mutual TLS")
      ->envname("SURGE_CLIENT_CERT")
      ->check(CLI::ExistingFile);
  app.add_option("--tls_key", tls_key, "client key (PEM) of --tls_cert")
      ->envname("SURGE_CLIENT_KEY")
      ->check(CLI::ExistingFile);

  bool json = false;
  std::string job_name, run_name, unit = "examples", description, format = "csv";

  auto* jobs = app.add_subcommand("jobs", "List jobs with their run and record counts");
  jobs->add_flag("--json", json, "print the ListJobsResponse as JSON");

  auto* job = app.add_subcommand("job", "Show, create or delete one job");
  job->require_subcommand(1);
  auto* job_show = job->add_subcommand("show", "Show a job");
  job_show->add_option("job", job_name, "job name")->required();
  job_show->add_flag("--json", json, "print the Job as JSON");
  auto* job_create = job->add_subcommand("create", "Create a job");
  job_create->add_option("job", job_name, "job name")->required();
  job_create->add_option("--unit", unit, "batch-size unit: examples or tokens")
      ->check(CLI::IsMember({"examples", "tokens"}));
  job_create->add_option("--description", description, "free text");
  std::vector<double> targets;
  int k_steps = 0;
  job_create->add_option("--targets", targets,
                         "target losses at which plain runs are compared (default: chosen "
                         "from the data)")
      ->delimiter(',');
  job_create->add_option("--k", k_steps, "steps after a target for the paper's improvement "
                                         "(default 10)")
      ->check(CLI::Range(1, 100000));
  job_create->add_flag("--json", json, "print the created Job as JSON");
  auto* job_delete = job->add_subcommand("delete", "Delete a job with all its runs and records");
  job_delete->add_option("job", job_name, "job name")->required();
  job_delete->add_flag("--json", json, "print the DeleteJobResponse as JSON");

  std::string run_arg;
  auto* run_cmd = app.add_subcommand("run", "Manage one run");
  run_cmd->require_subcommand(1);
  auto* run_delete =
      run_cmd->add_subcommand("delete", "Delete a run with its records (the job is refitted)");
  run_delete->add_option("--job", job_name, "job name")->required();
  run_delete->add_option("run", run_arg, "run name")->required();
  run_delete->add_flag("--json", json, "print the DeleteRunResponse as JSON");
  auto* runs = app.add_subcommand("runs", "List the runs of a job");
  runs->add_option("job", job_name, "job name")->required();
  runs->add_flag("--json", json, "print the ListRunsResponse as JSON");

  auto* records = app.add_subcommand("records", "Export the records of a job (all pages)");
  records->add_option("job", job_name, "job name")->required();
  records->add_option("--run", run_name, "only this run");
  records->add_option("--format", format, "csv (importable) or json (one Record per line)")
      ->check(CLI::IsMember({"csv", "json"}));
  records->add_flag("--json", json, "same as --format json");

  surge::cli::ImportArgs import_args;
  auto* import = app.add_subcommand(
      "import",
      "Import a CSV into a job (created if missing); the header tells the kind:\n"
      "  records: run,step,examples,batch_size,lr,loss[,eval_loss]"
      "[,grad_sq_small,grad_sq_big,b_small,b_big]\n"
      "  measured optima: stage,stage_loss,batch_size,lr_opt,lr_opt_se\n"
      "  raw probe results: stage,stage_loss,batch_size,lr,seed,improvement");
  import->add_option("--job", import_args.job, "job name (created if missing)")->required();
  import->add_option("file", import_args.file, "CSV file")->required();
  import->add_option("--unit", import_args.unit, "batch-size unit if the job is created")
      ->check(CLI::IsMember({"examples", "tokens"}));
  import->add_option("--batch-records", import_args.batch_records, "records per ingest batch")
      ->check(CLI::Range(1, 100000));
  import->add_option("--ingest-timeout", import_args.timeout_s,
                     "give up when the server accepts nothing for this many seconds")
      ->check(CLI::PositiveNumber);

  double batch_size = 0;
  int64_t step = -1, from_step = -1;
  double from_loss = 0;
  std::string from;
  auto* advise = app.add_subcommand("advise", "Optimal learning rate for a batch size at a step");
  advise->add_option("--job", job_name, "job name")->required();
  advise->add_option("--batch", batch_size, "batch size (in the job's unit)")
      ->required()
      ->check(CLI::PositiveNumber);
  advise->add_option("--step", step, "training step (default: the latest stage)")
      ->check(CLI::NonNegativeNumber);
  std::string criterion = "improvement";
  advise->add_option("--criterion", criterion,
                     "improvement: largest loss fall over k steps after the stage (the "
                     "paper's); fastest: fewest steps to the stage's target loss (runs only)")
      ->check(CLI::IsMember({"improvement", "fastest"}));
  advise->add_option("--from", from,
                     "B0:LR0, e.g. 256:3e-4: my LR is tuned at batch B0; scale it to --batch by "
                     "the job's fitted curve (with the linear and square-root rules beside it)");
  advise->add_option("--from-step", from_step, "the step the --from LR was tuned at")
      ->check(CLI::NonNegativeNumber);
  advise->add_option("--from-loss", from_loss, "the loss the --from LR was tuned at")
      ->check(CLI::PositiveNumber);
  advise->add_flag("--json", json, "print the Advice as JSON (the LR is field `lr`; with "
                                   "--from, the transferred one is `transfer.lr`)");

  auto* fit = app.add_subcommand("fit", "Show the job's fit: per-batch optima, models, drift");
  fit->add_option("--job", job_name, "job name")->required();
  fit->add_option("--targets", targets,
                  "ad hoc target losses for plain runs, e.g. 0.8,0.6 (computed now, not stored)")
      ->delimiter(',');
  fit->add_option("--k", k_steps, "ad hoc k for plain runs")->check(CLI::Range(1, 100000));
  fit->add_flag("--json", json, "print the Fit as JSON");

  auto* token_cmd = app.add_subcommand("token", "Make bearer tokens for a server's token file");
  token_cmd->require_subcommand(1);
  auto* token_new = token_cmd->add_subcommand(
      "new", "Print a new random token and its token-file line (the server keeps only the hash)");
  std::string tenant, role;
  token_new->add_option("--tenant", tenant, "tenant the token acts for")->required();
  token_new->add_option("--role", role, "reader, writer or admin")
      ->required()
      ->check(CLI::IsMember({"reader", "writer", "admin"}));

  std::string health_service;
  auto* health = app.add_subcommand(
      "health", "Ask the server's grpc.health.v1 service; prints SERVING and exits 0, else 1");
  health->add_option("--service", health_service, "service name (default: the whole server)");

  CLI11_PARSE(app, argc, argv);

  if (*token_new) {  // local: no server involved
    absl::Status made = surge::cli::NewToken(tenant, role);
    if (!made.ok()) {
      std::cerr << absl::StatusCodeToString(made.code()) << ": " << made.message() << "\n";
      return 1;
    }
    return 0;
  }
  if (!tls_cert.empty() != !tls_key.empty() || (!tls_cert.empty() && tls_ca.empty())) {
    std::cerr << "INVALID_ARGUMENT: --tls_cert and --tls_key go together, and with --tls_ca\n";
    return 1;
  }

  surge::client::ClientOptions options;
  options.target = server;
  options.call_timeout = absl::Seconds(timeout_s);
  options.token = token;
  options.tls_ca_file = tls_ca;
  options.tls_cert_file = tls_cert;
  options.tls_key_file = tls_key;
  surge::client::SurgeClient client(options);

  absl::Status status;
  if (*health) {
    status = surge::cli::Health(options, health_service);
  } else if (*jobs) {
    status = surge::cli::ListJobs(client, json);
  } else if (*job_show) {
    status = surge::cli::ShowJob(client, job_name, json);
  } else if (*job_create) {
    status = surge::cli::CreateJob(client, job_name, unit, description, targets, k_steps, json);
  } else if (*job_delete) {
    status = surge::cli::DeleteJob(client, job_name, json);
  } else if (*runs) {
    status = surge::cli::ListRuns(client, job_name, json);
  } else if (*run_delete) {
    status = surge::cli::DeleteRun(client, job_name, run_arg, json);
  } else if (*records) {
    status = surge::cli::ListRecords(client, job_name, run_name, json ? "json" : format);
  } else if (*import) {
    status = surge::cli::Import(client, import_args);
  } else if (*advise) {
    surge::cli::AdviseArgs args;
    args.job = job_name;
    args.batch_size = batch_size;
    if (step >= 0) args.step = step;
    args.criterion = criterion;
    args.from = from;
    if (from_step >= 0) args.from_step = from_step;
    if (from_loss > 0) args.from_loss = from_loss;
    args.json = json;
    status = surge::cli::Advise(client, args);
  } else if (*fit) {
    status = surge::cli::ShowFit(client, job_name, targets, k_steps, json);
  }
  if (!status.ok()) {
    std::cerr << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    if (status.code() == absl::StatusCode::kUnavailable) {
      std::cerr << "(is surge-server running at " << server << "? set --server or SURGE_SERVER)\n";
    }
    return 1;
  }
  return 0;
}
