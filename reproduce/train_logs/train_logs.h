// Training logs of a launched command read into a loss curve: the Hugging Face Trainer's log
// dicts (printed by its PrinterCallback or written above its tqdm bar by ProgressCallback), or
// any format a recipe describes with a PCRE2 pattern with named groups. Torch-free: the
// `[launch]` runner feeds it the command's output line by line as it arrives.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace audit::train_logs {

// One logged training step. Fields the log did not print stay NaN (step: -1).
struct LogPoint {
  int64_t step = -1;
  double loss = NAN;
  double lr = NAN;
  double epoch = NAN;
  double grad_norm = NAN;
};

// A stateful line parser: feed() it every line of the command's output in order. A line may
// hold carriage returns (a tqdm bar redrawn in place, with a log dict written over it): each
// \r-separated segment is tried, and the first point found is returned.
class LogParser {
 public:
  // The Hugging Face Trainer's log lines, as transformers prints them on the main process:
  //   {'loss': '4.864', 'grad_norm': '0.9544', 'learning_rate': '0.003', 'epoch': '0.1'}
  // (5.x formats floats as strings with "{:.4g}"; 4.x printed bare floats; numpy scalars as
  // np.float64(x) and tensors as tensor(x) are read too). A dict with a "loss" key is a point;
  // eval dicts (eval_loss, ...) are not. The dict does not carry the global step: a point's
  // step is its "step" key when one is printed, else the count of loss dicts so far times
  // `logging_steps` (the recipe's --logging_steps; 1 gives 1, 2, 3, ...). The closing dict with
  // train_runtime (and train_loss) is kept as summary(), not a point. Text around the dict (rank
  // prefixes, timestamps) is ignored.
  static LogParser hf_trainer(int64_t logging_steps = 1);

  // A PCRE2 pattern (UTF-8; invalid UTF-8 in a line never matches) with a named group `loss`
  // (required) and optionally `step`, `lr`, `epoch`, `grad_norm`, searched in each line (it
  // need not match the whole line). Without a `step` group, or when it did not take part in the
  // match, the step is the count of matching lines so far. A group whose text is not a number
  // leaves its field NaN; a line whose loss is not a number is no point.
  // Throws std::invalid_argument with PCRE2's message and the offset when the pattern does not
  // compile, or when it has no `loss` group.
  static LogParser regex(const std::string& pattern);

  // The point this line logs, if any.
  std::optional<LogPoint> feed(std::string_view line);

  // The HF Trainer's closing dict ({"train_runtime", "train_samples_per_second",
  // "train_steps_per_second", "train_loss", "epoch"}, numbers as numbers; strings kept), or
  // null when none was seen (and always null for a regex parser).
  const nlohmann::json& summary() const { return summary_; }
  // Points returned so far.
  int64_t points() const { return points_; }
  // "hf-trainer" or "regex".
  const std::string& format() const { return format_; }

 private:
  LogParser() = default;
  std::optional<LogPoint> feed_hf(std::string_view segment);
  std::optional<LogPoint> feed_regex(std::string_view segment);

  std::string format_;
  int64_t logging_steps_ = 1;
  std::shared_ptr<void> code_;  // pcre2_code_8, freed with pcre2_code_free_8
  int group_loss_ = -1, group_step_ = -1, group_lr_ = -1, group_epoch_ = -1, group_grad_ = -1;
  int64_t points_ = 0;
  nlohmann::json summary_;
};

// The parser a recipe's [launch] asks for: "hf-trainer", "regex" (with `pattern`) or "none"
// (nullopt). Throws std::invalid_argument for another format name or a bad pattern.
std::optional<LogParser> parser_for(const std::string& log_format, const std::string& pattern = "");

// Every point of a whole text (split at '\n'), fed in order to `parser`.
std::vector<LogPoint> parse_text(LogParser& parser, std::string_view text);

// The loss-curve artifact (ledger artifact "loss_curve/<stage>") in the shape the native trainer
// stores (reproduce/pipeline) and the report draws (reports/html): parallel arrays "step",
// "loss", "lr", plus "epoch" and "grad_norm", with null where the log did not say; "source"
// says where the curve came from (e.g. "parsed from stdout, hf-trainer format"), and
// "summary" holds the parser's summary() when it is not null. No "tokens_per_s": a log does not
// give it.
nlohmann::json loss_curve_json(const std::vector<LogPoint>& pts, const std::string& source,
                               const nlohmann::json& summary = nullptr);

}  // namespace audit::train_logs
