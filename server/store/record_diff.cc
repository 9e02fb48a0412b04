// Re-sent records: how a stored record and a re-sent one differ, and the
// error that refuses a conflicting re-send (shared by every Store backend).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/store/store.h"

namespace surge::store {

std::string RecordDifference(const surge::v1::Record& stored, const surge::v1::Record& sent) {
  std::vector<std::string> diffs;
  auto num = [&](const char* name, double a, double b) {
    if (!(a == b)) diffs.push_back(absl::StrCat(name, " ", a, " stored, ", b, " sent"));
  };
  auto opt = [&](const char* name, bool has_a, double a, bool has_b, double b) {
    if (has_a != has_b) {
      diffs.push_back(absl::StrCat(name, has_a ? " stored, absent in the re-send"
                                               : " absent when stored, sent now"));
    } else if (has_a) {
      num(name, a, b);
    }
  };
  if (stored.examples() != sent.examples()) {
    diffs.push_back(absl::StrCat("examples ", stored.examples(), " stored, ", sent.examples(),
                                 " sent"));
  }
  num("lr", stored.lr(), sent.lr());
  num("loss", stored.loss(), sent.loss());
  opt("eval_loss", stored.has_eval_loss(), stored.eval_loss(), sent.has_eval_loss(),
      sent.eval_loss());
  opt("grad_stats.grad_sq_small", stored.has_grad_stats(), stored.grad_stats().grad_sq_small(),
      sent.has_grad_stats(), sent.grad_stats().grad_sq_small());
  if (stored.has_grad_stats() && sent.has_grad_stats()) {
    num("grad_stats.grad_sq_big", stored.grad_stats().grad_sq_big(), sent.grad_stats().grad_sq_big());
    num("grad_stats.b_small", static_cast<double>(stored.grad_stats().b_small()),
        static_cast<double>(sent.grad_stats().b_small()));
    num("grad_stats.b_big", static_cast<double>(stored.grad_stats().b_big()),
        static_cast<double>(sent.grad_stats().b_big()));
  }
  return absl::StrJoin(diffs, ", ");
}


absl::Status ConflictingResend(int index, const surge::v1::Record& sent, const std::string& diff) {
  return absl::AlreadyExistsError(absl::StrCat(
      "records[", index, "] (run '", sent.run(), "', step ", sent.step(),
      "): already stored with other values (", diff,
      "); a step is stored once: re-send the same values or use another step"));
}

}  // namespace surge::store
