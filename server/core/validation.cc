// Field-by-field validation rules; see validation.h for the contract.
#include "server/core/validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/util/status_macros.h"

namespace surge::core {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

absl::Status Bad(absl::string_view field, absl::string_view rule, double got) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s, got %g", field, rule, got));
}

absl::Status CheckFinite(absl::string_view field, double v) {
  if (!std::isfinite(v)) return Bad(field, "must be finite", v);
  return absl::OkStatus();
}

absl::Status CheckNonNegative(absl::string_view field, double v) {
  if (!std::isfinite(v) || v < 0) return Bad(field, "must be finite and >= 0", v);
  return absl::OkStatus();
}

absl::Status CheckUnitInterval(absl::string_view field, double v) {
  if (!std::isfinite(v) || v < 0 || v >= 1) return Bad(field, "must be in [0, 1)", v);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  if (name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most 128 characters, got ", name.size()));
  }
  if (name[0] == '.' || name[0] == '-' || name[0] == '_') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must start with a letter or digit, got '", name, "'"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": only letters, digits, '.', '_' and '-' are allowed, got '", name, "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateEvidenceSettings(const google::protobuf::RepeatedField<double>& targets,
                                      int k_steps, absl::string_view prefix) {
  if (targets.size() > 16) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "target_losses: at most 16, got ",
                                                   targets.size()));
  }
  for (int i = 0; i < targets.size(); ++i) {
    if (!std::isfinite(targets[i]) || targets[i] <= 0) {
      return Bad(absl::StrCat(prefix, "target_losses[", i, "]"), "must be finite and > 0",
                 targets[i]);
    }
  }
  if (k_steps < 0 || k_steps > 100000) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "k_steps: must be in [0, 100000] (0: the default 10), got ", k_steps));
  }
  return absl::OkStatus();
}

absl::Status ValidateJob(const surge::v1::Job& job) {
  SURGE_RETURN_IF_ERROR(ValidateName("job.name", job.name()));
  if (job.batch_unit() != surge::v1::BATCH_UNIT_EXAMPLES &&
      job.batch_unit() != surge::v1::BATCH_UNIT_TOKENS) {
    return absl::InvalidArgumentError(
        "job.batch_unit: must be BATCH_UNIT_EXAMPLES or BATCH_UNIT_TOKENS");
  }
  if (job.description().size() > 4096) {
    return absl::InvalidArgumentError("job.description: at most 4096 characters");
  }
  return ValidateEvidenceSettings(job.target_losses(), job.k_steps(), "job.");
}

absl::Status ValidateRun(const surge::v1::Run& run) {
  SURGE_RETURN_IF_ERROR(ValidateName("run.name", run.name()));
  if (run.batch_size() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("run.batch_size: must be > 0, got ", run.batch_size()));
  }
  SURGE_RETURN_IF_ERROR(CheckNonNegative("run.base_lr", run.base_lr()));
  if (run.has_optimizer()) {
    const auto& opt = run.optimizer();
    SURGE_RETURN_IF_ERROR(CheckUnitInterval("run.optimizer.beta1", opt.beta1()));
    SURGE_RETURN_IF_ERROR(CheckUnitInterval("run.optimizer.beta2", opt.beta2()));
    SURGE_RETURN_IF_ERROR(CheckNonNegative("run.optimizer.eps", opt.eps()));
    SURGE_RETURN_IF_ERROR(CheckNonNegative("run.optimizer.weight_decay", opt.weight_decay()));
    if (opt.name().size() > 64) {
      return absl::InvalidArgumentError("run.optimizer.name: at most 64 characters");
    }
  }
  switch (run.protocol()) {
    case surge::v1::PROTOCOL_PLAIN:
    case surge::v1::PROTOCOL_FULL_RUN:
      if (run.has_parent()) {
        return absl::InvalidArgumentError(
            "run.parent: only probe runs (PROTOCOL_PROBE) have a parent stage");
      }
      break;
    case surge::v1::PROTOCOL_PROBE:
      if (!run.has_parent()) {
        return absl::InvalidArgumentError(
            "run.parent: required for PROTOCOL_PROBE (checkpoint step and its loss)");
      }
      if (run.parent().checkpoint_step() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "run.parent.checkpoint_step: must be >= 0, got ", run.parent().checkpoint_step()));
      }
      // The fit takes ln of the stage loss: finite and > 0 (a cross-entropy).
      if (!std::isfinite(run.parent().loss()) || run.parent().loss() <= 0) {
        return Bad("run.parent.loss", "must be finite and > 0 (the loss at the checkpoint)",
                   run.parent().loss());
      }
      if (!run.parent().base_run().empty()) {
        SURGE_RETURN_IF_ERROR(ValidateName("run.parent.base_run", run.parent().base_run()));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "run.protocol: must be PROTOCOL_PLAIN, PROTOCOL_PROBE or PROTOCOL_FULL_RUN");
  }
  if (run.has_target_loss()) {
    if (!std::isfinite(run.target_loss()) || run.target_loss() <= 0) {
      return Bad("run.target_loss", "must be finite and > 0", run.target_loss());
    }
  }
  if (run.labels_size() > 64) {
    return absl::InvalidArgumentError("run.labels: at most 64 labels");
  }
  for (const auto& [key, value] : run.labels()) {
    if (key.empty() || key.size() > 64) {
      return absl::InvalidArgumentError(
          absl::StrCat("run.labels: keys must have 1-64 characters, got '", key, "'"));
    }
    if (value.size() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("run.labels[", key, "]: values have at most 256 characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRecord(const surge::v1::Record& r, int index) {
  auto field = [index](absl::string_view name) {
    return absl::StrCat("records[", index, "].", name);
  };
  if (r.run().empty()) return absl::InvalidArgumentError(field("run") + ": is required");
  if (r.step() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field("step"), ": must be >= 0, got ", r.step()));
  }
  if (r.examples() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field("examples"), ": must be >= 0, got ", r.examples()));
  }
  SURGE_RETURN_IF_ERROR(CheckNonNegative(field("lr"), r.lr()));
  SURGE_RETURN_IF_ERROR(CheckFinite(field("loss"), r.loss()));
  if (r.has_eval_loss()) SURGE_RETURN_IF_ERROR(CheckFinite(field("eval_loss"), r.eval_loss()));
  if (r.has_grad_stats()) {
    const auto& g = r.grad_stats();
    SURGE_RETURN_IF_ERROR(CheckNonNegative(field("grad_stats.grad_sq_small"), g.grad_sq_small()));
    SURGE_RETURN_IF_ERROR(CheckNonNegative(field("grad_stats.grad_sq_big"), g.grad_sq_big()));
    if (g.b_small() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(field("grad_stats.b_small"), ": must be >= 1, got ", g.b_small()));
    }
    if (g.b_big() <= g.b_small()) {
      return absl::InvalidArgumentError(absl::StrCat(field("grad_stats.b_big"),
                                                     ": must be > b_small (", g.b_small(),
                                                     "), got ", g.b_big()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateIngestBatch(const surge::v1::IngestRequest& request, uint64_t last_seq) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  if (request.seq() <= last_seq) {
    return absl::InvalidArgumentError(absl::StrCat(
        "seq: must increase within a stream; got ", request.seq(), " after ", last_seq));
  }
  if (request.records_size() > kMaxRecordsPerBatch) {
    return absl::ResourceExhaustedError(absl::StrCat("records: at most ", kMaxRecordsPerBatch,
                                                     " per batch, got ", request.records_size(),
                                                     "; split the batch"));
  }
  const std::string* last_run = nullptr;
  for (int i = 0; i < request.records_size(); ++i) {
    const surge::v1::Record& record = request.records(i);
    SURGE_RETURN_IF_ERROR(ValidateRecord(record, i));
    // Run names are checked once per change of run within the batch.
    if (last_run == nullptr || *last_run != record.run()) {
      SURGE_RETURN_IF_ERROR(ValidateName(absl::StrCat("records[", i, "].run"), record.run()));
      last_run = &record.run();
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOptima(const surge::v1::AddOptimaRequest& request) {
  if (request.optima_size() > kMaxRecordsPerBatch) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "optima: at most ", kMaxRecordsPerBatch, " per call, got ", request.optima_size()));
  }
  for (int i = 0; i < request.optima_size(); ++i) {
    const auto& o = request.optima(i);
    auto field = [i](absl::string_view name) { return absl::StrCat("optima[", i, "].", name); };
    if (o.stage() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(field("stage"), ": must be >= 0, got ", o.stage()));
    }
    auto positive = [&](absl::string_view name, double v) -> absl::Status {
      if (!std::isfinite(v) || v <= 0) return Bad(field(name), "must be finite and > 0", v);
      return absl::OkStatus();
    };
    SURGE_RETURN_IF_ERROR(positive("stage_loss", o.stage_loss()));
    SURGE_RETURN_IF_ERROR(positive("batch_size", o.batch_size()));
    SURGE_RETURN_IF_ERROR(positive("lr_opt", o.lr_opt()));
    SURGE_RETURN_IF_ERROR(CheckNonNegative(field("lr_opt_se"), o.lr_opt_se()));
  }
  return absl::OkStatus();
}

absl::Status ValidateFitRequest(const surge::v1::GetFitRequest& request) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  return ValidateEvidenceSettings(request.target_losses(), request.k_steps(), "");
}

absl::Status ValidateAdviceRequest(const surge::v1::GetAdviceRequest& request) {
  if (!surge::v1::Criterion_IsValid(request.criterion())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "criterion: unknown value ", request.criterion(),
        " (CRITERION_IMPROVEMENT or CRITERION_FASTEST)"));
  }
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  if (!std::isfinite(request.batch_size()) || request.batch_size() <= 0) {
    return Bad("batch_size", "must be finite and > 0", request.batch_size());
  }
  if (request.has_step() && request.step() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step: must be >= 0, got ", request.step()));
  }
  if (request.has_reference()) {
    const surge::v1::AdviceReference& ref = request.reference();
    if (!std::isfinite(ref.batch_size()) || ref.batch_size() <= 0) {
      return Bad("reference.batch_size", "must be finite and > 0 (the batch size the LR was tuned at)",
                 ref.batch_size());
    }
    if (!std::isfinite(ref.lr()) || ref.lr() <= 0) {
      return Bad("reference.lr", "must be finite and > 0 (the LR tuned at reference.batch_size)",
                 ref.lr());
    }
    if (ref.has_step() && ref.step() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("reference.step: must be >= 0, got ", ref.step()));
    }
    if (ref.has_loss() && (!std::isfinite(ref.loss()) || ref.loss() <= 0)) {
      return Bad("reference.loss", "must be finite and > 0", ref.loss());
    }
    if (ref.has_step() && ref.has_loss()) {
      return absl::InvalidArgumentError(
          "reference.step, reference.loss: give the step or the loss the LR was tuned at, not both");
    }
  }
  return absl::OkStatus();
}

}  // namespace surge::core
