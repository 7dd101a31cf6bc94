// The s1 miniature, end to end, for real: a base model pretrained here on direct answers (or a
// Hugging Face checkpoint loaded with its tokenizer and chat template), a teacher (the exact
// solver, priced per token as an API bill) writing traces for a question
// pool, s1's three filters (quality, difficulty by base-model inference, diversity), SFT with
// the claimed schedule over several seeds, and evaluation of base and tuned models in and out of
// distribution with budget forcing. A real claim (data.source = "jsonl") instead loads its
// checkpoint, reads its training file (token counts, truncation, the teacher's bill, 8- and
// 13-gram overlap with every benchmark file), fine-tunes on it and evaluates on its
// [[eval.suites]] files, logging every completion. Bad input and a model that cannot fit the
// device (the memory plan) are refused before the run is opened. Every stage is metered into the
// ledger; every number the report shows is written here as a ledger row.
#include "reproduce/pipeline/pipeline.h"
#include "reproduce/pipeline/ranks.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cmath>
#include <mutex>
#include <set>
#include <cstdio>
#include <filesystem>

#include <torch/torch.h>

#include "datasets/decontam/decontam.h"
#include "datasets/jsonl/jsonl.h"
#include "datasets/packing/packing.h"
#include "datasets/select/select.h"
#include "datasets/tasks/splits.h"
#include "datasets/chat_format/chat_format.h"
#include "datasets/hf_tokenizer/hf_tokenizer.h"
#include "datasets/tokenizer/tokenizer.h"
#include "ledger/costs/cost_model.h"
#include "ledger/store/event_keys.h"
#include "ledger/store/branch.h"      // record_branch_from_env (the CI branch of the run)
#include "ledger/store/ledger.h"
#include "ledger/meter/meter.h"
#include "reproduce/verdicts/verdicts.h"
#include "common/errors.h"
#include "reproduce/estimate/estimate.h"
#include "common/format.h"
#include "common/progress.h"
#include "reproduce/recipe/recipe.h"
#include "reproduce/hf_checkpoint/checkpoint_dir.h"
#include "reproduce/model/checkpoint.h"
#include "reproduce/model/generate.h"
#include "reproduce/model/model.h"
#include "reproduce/trainer/trainer.h"
#include "common/version.h"
#include "reproduce/eval/evaluate.h"
#include "reproduce/launch/launch.h"
#include "reproduce/train_logs/train_logs.h"
#include "ledger/costs/hardware.h"
#include "suites/lm_eval/lm_eval.h"
#include "reproduce/memory_plan/memory_plan.h"
#include "suites/benchmarks/benchmarks.h"
#include "suites/grading/grading.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace audit::pipeline {
namespace {

// The base model's source, checked before a run is opened: the recipe's shapes over the byte
// tokenizer (pretrained here), or a checkpoint directory with its tokenizer and chat template.
struct BaseSource {
  fs::path checkpoint;  // empty: pretrain here
  std::unique_ptr<datasets::ChatFormat> format;
};

std::unique_ptr<datasets::ChatFormat> checkpoint_format(const std::string& dir);

BaseSource resolve_base(const recipe::Recipe& r) {
  const auto& b = r.base;
  BaseSource src;
  if (b.arch != "qwen2" && b.arch != "llama" && b.arch != "mistral")
    throw InputError(r.path, 0, 0, "base.arch",
                     "`audit run` trains the dense qwen2, llama and mistral architectures; '" +
                         b.arch + "' is for estimate and replay");
  if (b.checkpoint.empty()) {
    if (!b.train_here)
      throw InputError(r.path, 0, 0, "base.train_here",
                       "train_here = false needs base.checkpoint (a Hugging Face checkpoint "
                       "directory to load the base model from)");
    src.format = datasets::byte_format();
  } else {
    if (b.train_here)
      throw InputError(r.path, 0, 0, "base.train_here",
                       "base.checkpoint is loaded, not pretrained here: set train_here = false");
    src.checkpoint = fs::path(r.path).parent_path() / b.checkpoint;
    const std::string dir = src.checkpoint.string();
    hf::open_checkpoint(dir);  // every shard, tensor name, dtype and shape against config.json
    src.format = checkpoint_format(dir);
  }
  const int64_t needed = src.format->tokenizer().vocab_size();
  if (b.vocab < needed)
    throw InputError(r.path, 0, 0, "base.vocab_size",
                     "is " + std::to_string(b.vocab) + " but the tokenizer has " +
                         std::to_string(needed) + " ids");
  return src;
}

// The tokenizer and chat template of a Hugging Face checkpoint folder, as audit prompts it.
std::unique_ptr<datasets::ChatFormat> checkpoint_format(const std::string& dir) {
  std::shared_ptr<const datasets::Tokenizer> tok = datasets::HfTokenizer::load(dir);
  auto tc = datasets::read_tokenizer_config(dir);
  if (tc.template_name.empty()) {
    std::string names;
    for (const auto& n : datasets::chat_template_names()) names += (names.empty() ? "" : ", ") + n;
    throw InputError(tc.path.empty() ? dir + "/tokenizer_config.json" : tc.path, 0, 0,
                     "chat_template",
                     tc.chat_template.empty()
                         ? "missing: `audit run` prompts the model through its chat template"
                         : "not a template audit renders (it renders " + names + ")");
  }
  try {
    return datasets::template_format(tok, tc, tc.template_name);
  } catch (const std::invalid_argument& e) {
    throw InputError(tc.path, 0, 0, "chat_template", e.what());
  }
}

// The GPUs a launched command can use, found through NVML before the run is opened, and the
// hardware-table GPU its metered time is priced as: the detected one, not the claimed one.
struct LaunchGpus {
  std::vector<int> indices;        // NVML indices metered (CUDA_VISIBLE_DEVICES when it lists them)
  std::vector<std::string> names;  // their NVML names
  std::string gpu_type;            // hardware-table id the time is priced as; "" without a GPU
  std::string priced_as;           // "detected" | "hardware.gpu_type (NVML name not in the table)"
  std::string note;                // why no GPU is metered, or how the list was chosen
};

std::string join_argv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

LaunchGpus detect_launch_gpus(const recipe::Recipe& r) {
  LaunchGpus g;
  auto& nv = ledger::Nvml::instance();
  if (!nv.available() || nv.device_count() == 0) {
    g.note = nv.available() ? "NVML reports no GPU" : "no GPU metered: " + nv.why_absent();
    return g;
  }
  // CUDA_VISIBLE_DEVICES (the launch's env first, then audit's) as a list of indices restricts
  // the GPUs metered; UUIDs or MIG names are not mapped, so every GPU is metered then.
  std::string cvd;
  if (auto it = r.launch.env.find("CUDA_VISIBLE_DEVICES"); it != r.launch.env.end())
    cvd = it->second;
  else if (const char* e = std::getenv("CUDA_VISIBLE_DEVICES"))
    cvd = e;
  std::vector<int> listed;
  bool numeric = !cvd.empty();
  for (size_t i = 0; numeric && i < cvd.size();) {
    size_t j = cvd.find(',', i);
    if (j == std::string::npos) j = cvd.size();
    const std::string tok = cvd.substr(i, j - i);
    if (tok.empty() || tok.find_first_not_of("0123456789") != std::string::npos)
      numeric = false;
    else if (std::stoi(tok) < nv.device_count())
      listed.push_back(std::stoi(tok));
    i = j + 1;
  }
  if (numeric) {
    g.indices = listed;
    g.note = "CUDA_VISIBLE_DEVICES=" + cvd;
  } else {
    for (int i = 0; i < nv.device_count(); ++i) g.indices.push_back(i);
    g.note = cvd.empty() ? "every GPU NVML reports" : "every GPU (CUDA_VISIBLE_DEVICES=" + cvd +
                                                          " is not a list of indices)";
  }
  if (g.indices.empty()) {
    g.note += ": no GPU left to meter";
    return g;
  }
  std::string type;
  bool same = true;
  for (int i : g.indices) {
    g.names.push_back(nv.name(i));
    const std::string t = ledger::gpu_type_from_nvml_name(g.names.back());
    if (t.empty() || (!type.empty() && t != type)) same = false;
    if (type.empty()) type = t;
  }
  if (same && !type.empty()) {
    g.gpu_type = type;
    g.priced_as = "detected (NVML name " + g.names.front() + ")";
  } else if (!r.hardware.gpu_type.empty()) {
    g.gpu_type = r.hardware.gpu_type;
    g.priced_as = "hardware.gpu_type: the hardware table has no row for NVML's '" +
                  g.names.front() + "'" + (same ? "" : " (or the GPUs differ)");
  } else {
    throw InputError(r.path, 0, 0, "hardware.gpu_type",
                     "NVML reports '" + g.names.front() +
                         "', which the hardware table cannot price: set hardware.gpu_type to the "
                         "table GPU to price its time as (audit estimate --help lists them)");
  }
  return g;
}

// Training data from a JSONL file (data.source = "jsonl"), read, rendered with the base's chat
// format and counted before the run is opened.
struct UserData {
  std::string path;
  std::vector<datasets::JsonlRecord> records;
  std::vector<datasets::Sequence> seqs;  // full length; rows are cut at the block when batched
  int64_t block = 0;                     // min(train.block_size, base.max_position)
  int64_t longest = 0;                   // longest row after the cut
  int64_t truncated = 0;                 // samples longer than the block
  double trace_tokens = 0;               // thinking + answer tokens of every record (teacher output)
  json stats;                            // the token counts stored with the run
};

double percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // nearest rank, as numpy's "higher" would: the smallest value with at least q of the data at
  // or below it
  size_t k = size_t(std::ceil(q * double(v.size())));
  return double(v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)]);
}

UserData read_user_data(const recipe::Recipe& r, const datasets::ChatFormat& fmt) {
  UserData u;
  u.path = (fs::path(r.path).parent_path() / r.data.jsonl_path).string();
  datasets::JsonlOptions jo;
  jo.fields.question = r.data.question_field;
  jo.fields.thinking = r.data.thinking_field;
  jo.fields.answer = r.data.answer_field;
  u.records = datasets::load_jsonl(u.path, jo);
  const auto loss_on = datasets::parse_loss_on(r.train.loss_on);
  u.block = std::min<int64_t>(r.train.block_size, r.base.max_position);
  std::vector<int64_t> lens;
  double total = 0, kept = 0, supervised = 0;
  for (const auto& rec : u.records) {
    u.seqs.push_back(fmt.document(rec.question, rec.thinking, rec.answer, loss_on));
    const auto& sq = u.seqs.back();
    const int64_t n = int64_t(sq.tokens.size());
    lens.push_back(n);
    total += double(n);
    kept += double(std::min(n, u.block));
    for (int64_t i = 0; i < std::min(n, u.block); ++i) supervised += sq.loss_mask[size_t(i)];
    if (n > u.block) ++u.truncated;
    u.longest = std::max(u.longest, std::min(n, u.block));
    u.trace_tokens += double(fmt.tokenizer().encode(rec.thinking).size() +
                             fmt.tokenizer().encode(rec.answer).size());
  }
  const double n = double(std::max<size_t>(1, lens.size()));
  u.stats = {{"file", u.path},
             {"records", u.records.size()},
             {"fields", {{"question", r.data.question_field}, {"thinking", r.data.thinking_field},
                         {"answer", r.data.answer_field}}},
             {"tokenizer", fmt.describe()},
             {"tokens_mean", total / n},
             {"tokens_p90", percentile(lens, 0.9)},
             {"tokens_max", lens.empty() ? 0 : *std::max_element(lens.begin(), lens.end())},
             {"tokens_total", total},
             {"block_size", u.block},
             {"truncated_samples", u.truncated},
             {"tokens_after_truncation", kept},
             {"tokens_cut", total - kept},
             {"supervised_tokens", supervised},
             {"trace_tokens", u.trace_tokens},
             {"what", "tokens per training sample as rendered with the base's chat template "
                      "(prompt, thinking, answer and markers), counted here"}};
  return u;
}

// The benchmark files of [[eval.suites]], read and checked before the run is opened.
std::vector<suites::Suite> read_suites(const recipe::Recipe& r) {
  std::vector<suites::Suite> out;
  const fs::path dir = fs::path(r.path).parent_path() / r.eval.suites_dir;
  for (const auto& e : r.eval.suites) {
    suites::SuiteSpec sp;
    sp.name = e.name;
    sp.path = (dir / e.path).string();
    sp.kind = suites::parse_suite_kind(e.kind);
    sp.ood = e.ood;
    sp.question_field = e.question_field;
    sp.answer_field = e.answer_field;
    sp.choices_field = e.choices_field;
    sp.shuffle_seed = uint64_t(r.data.seed);
    sp.limit = e.limit;
    out.push_back(suites::load_suite(sp));
  }
  return out;
}

// Memory this run may use on its device, and where the figure came from.
int64_t device_memory(const std::string& device, std::string* source) {
  if (device == "cuda") {
    ledger::Nvml::Reading rd;
    if (ledger::Nvml::instance().read(0, &rd) && rd.mem_total > 0) {
      *source = "NVML GPU 0: total - used";
      return int64_t(rd.mem_total - rd.mem_used);
    }
    *source = "unknown (NVML unavailable)";
    return 0;
  }
  return plan::cpu_available_bytes(source);
}

plan::MemoryInputs memory_inputs(const recipe::Recipe& r, const std::string& device,
                                 int64_t longest) {
  plan::MemoryInputs mi;
  mi.model = r.base;
  mi.micro_batch = r.train.micro_batch_or_global();
  mi.longest_tokens = longest;
  mi.recompute = r.train.recompute;
  mi.bf16 = r.train.precision == "bf16" && device == "cuda";
  mi.device = device;
  mi.device_bytes = device_memory(device, &mi.device_source);
  return mi;
}

[[noreturn]] void refuse_memory(const recipe::Recipe& r, const plan::MemoryPlan& p,
                                const std::string& device, const std::string& source,
                                const std::string& what) {
  throw InputError(r.path, 0, 0, "base",
                   "memory plan: " + what + " needs " + text::bytes(p.total_bytes) + " on " +
                       device + ", which has " + text::bytes(double(p.device_bytes)) +
                       " available (" + source + "):\n" + p.to_text() +
                       "  a full fine-tune of this model needs a larger device or sharding "
                       "across several (train.parallelism with several processes)");
}

// Training keys this run cannot honour are refused before it opens.
void check_train_keys(const recipe::Recipe& r, const std::string& device) {
  const auto& t = r.train;
  if (t.precision == "fp8")
    throw InputError(r.path, 0, 0, "train.precision",
                     "fp8 training is not built; use \"bf16\" (CUDA) or \"fp32\"");
  if (t.precision == "bf16" && device != "cuda")
    throw InputError(r.path, 0, 0, "train.precision",
                     "bf16 autocast runs on CUDA; on the CPU train in fp32: "
                     "--set train.precision=fp32 (the ledger stores the precision that ran)");
  if (t.parallelism == "ep_pp_dp")
    throw InputError(r.path, 0, 0, "train.parallelism",
                     "expert/pipeline parallelism is for MoE models, which `audit run` does not train");
}

train::TrainData to_train_data(const datasets::Batch& b) {
  train::TrainData d;
  auto opts = torch::TensorOptions().dtype(torch::kInt32);
  d.tokens = torch::from_blob(const_cast<int32_t*>(b.tokens.data()), {b.rows, b.cols}, opts)
                 .to(torch::kInt64);
  d.loss_mask = torch::from_blob(const_cast<uint8_t*>(b.loss_mask.data()), {b.rows, b.cols},
                                 torch::TensorOptions().dtype(torch::kUInt8))
                    .clone();
  d.position_ids =
      torch::from_blob(const_cast<int32_t*>(b.positions.data()), {b.rows, b.cols}, opts)
          .to(torch::kInt64);
  return d;
}

std::vector<size_t> iota(size_t n) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

model::CausalLM clone_model(model::CausalLM& src) {
  model::CausalLM dst(src->config());
  dst->to(src->device());
  load_state(dst, model::state(src), "in-memory copy");
  return dst;
}

class Pipeline {
 public:
  Pipeline(const RunOptions& o, recipe::Recipe r, BaseSource base, std::optional<UserData> data,
           std::vector<suites::Suite> suites, plan::MemoryPlan memory,
           std::optional<LaunchGpus> launch = std::nullopt, ranks::Group* group = nullptr)
      : o_(o), r_(std::move(r)), L_(o.ledger), device_(o.device),
        checkpoint_(std::move(base.checkpoint)), fmt_(std::move(base.format)),
        data_(std::move(data)), suites_(std::move(suites)), memory_(std::move(memory)),
        launch_(std::move(launch)), group_(group) {}

  int64_t run();

 private:
  ledger::MeterOptions meter_opts() const {
    ledger::MeterOptions m;
    m.interval_s = o_.meter_interval_s;
    if (device_ == "cuda") m.gpus = {0};
    return m;
  }
  // A training stage's: with several ranks, the whole group's CPU (rank 0's own and every
  // worker's, through the store) and, on CUDA, every GPU of this machine's ranks.
  ledger::MeterOptions train_meter_opts() {
    ledger::MeterOptions m = meter_opts();
    if (!group_ || group_->size() <= 1) return m;
    group_->begin_stage();
    ranks::Group* g = group_;
    m.tree_probe = [g](double* cpu, double* rss) { return g->probe(cpu, rss); };
    if (device_ == "cuda") {
      m.gpus.clear();
      for (int i = 0; i < g->spec().local_world_size; ++i) m.gpus.push_back(i);
    }
    return m;
  }
  void write_rank_meters(int64_t stage_id, const std::string& label, const std::string& status);
  void event(int64_t stage, const std::string& key, const json& v) {
    L_.append_event(run_id_, stage, "POINT", key, v, "reproduce/pipeline/pipeline.cpp");
  }
  std::vector<train::StepInfo> train_model(model::CausalLM& m, const datasets::Batch& data,
                                           train::TrainConfig cfg, const std::string& label,
                                           int64_t stage_id);
  void pretrain();
  void load_base();
  void distill();
  void select();
  void user_data();
  void sft(int64_t seed_index);
  void eval();
  void costs();
  // [launch]: the claimant's command is the final run; audit evaluates what it wrote.
  void launch_train();
  void load_output();
  void launch_eval();
  // A [launch] or [launch.eval] command as the runner takes it. Python buffers its stdout into a
  // pipe (the loss lines would arrive only at exit), so PYTHONUNBUFFERED=1 unless env sets it.
  static launch::Command launch_command(const std::vector<std::string>& argv, const std::string& workdir,
                                        const std::map<std::string, std::string>& env) {
    launch::Command c{argv, workdir, env};
    c.env.emplace("PYTHONUNBUFFERED", "1");
    return c;
  }
  launch::Limits launch_limits(double timeout) const {
    launch::Limits lim;
    lim.timeout_s = timeout;
    lim.grace_s = r_.launch.grace;
    lim.interval_s = o_.meter_interval_s;
    return lim;
  }
  // The GPU type measured GPU time is priced as: the detected one for a launch.
  std::string priced_gpu_type(const std::string& run_device) const {
    if (launch_) return launch_->gpu_type;
    return run_device == "cuda" ? r_.hardware.gpu_type : "";
  }

  RunOptions o_;
  recipe::Recipe r_;
  ledger::Ledger L_;
  std::string device_;
  int64_t run_id_ = 0;
  fs::path work_;
  fs::path checkpoint_;                           // the base checkpoint; empty = pretrain
  std::unique_ptr<datasets::ChatFormat> fmt_;     // tokenizer and template of the base
  std::optional<UserData> data_;                  // data.source = "jsonl"
  std::vector<suites::Suite> suites_;             // [[eval.suites]]
  plan::MemoryPlan memory_;                       // at the longest sample (jsonl); else empty
  datasets::Splits splits_;
  std::vector<datasets::Example> pool_;     // with teacher traces after distill
  std::vector<datasets::Example> selected_;
  model::CausalLM base_{nullptr};
  std::vector<model::CausalLM> tuned_;
  double teacher_tokens_ = 0;    // teacher output tokens (distill: measured; jsonl: estimated)
  int64_t teacher_questions_ = 0;  // questions the teacher answered
  double inference_tokens_ = 0;  // tokens generated by filter and eval inference (measured)
  std::optional<LaunchGpus> launch_;  // set for a [launch] run
  ranks::Group* group_ = nullptr;     // several ranks (--nproc, --distributed); else none
};

std::vector<train::StepInfo> Pipeline::train_model(model::CausalLM& m, const datasets::Batch& data,
                                                   train::TrainConfig cfg, const std::string& label,
                                                   int64_t stage_id) {
  cfg.device = device_;
  cfg.checkpoint_meta["recipe_sha256"] = r_.sha256;
  cfg.checkpoint_meta["run_id"] = std::to_string(run_id_);
  cfg.checkpoint_meta["stage"] = label;
  // Several ranks: the recipe's parallelism (checkpoints record the world that wrote them).
  const bool multi = group_ && group_->size() > 1;
  cfg.parallelism = multi ? r_.train.parallelism : "none";
  const std::string save_path = work_.empty() ? "" : (work_ / (label + ".ckpt")).string();
  train::TrainData td = to_train_data(data);
  std::vector<train::StepInfo> steps;
  json curve = {{"step", json::array()}, {"loss", json::array()}, {"lr", json::array()},
                {"tokens_per_s", json::array()}};
  json comm_steps = json::array();
  int64_t total_steps = 0, warmup_steps = 0;
  try {
    if (multi) {
      // Every worker builds its trainer from the same model config, settings and data; rank
      // 0's initial parameters reach them through the trainer's broadcast.
      ranks::Job job;
      job.label = label;
      job.model = m->config();
      job.cfg = cfg;
      job.data = td;
      job.resume = true;
      job.save_path = save_path;
      group_->send_job(job);
    }
    train::Trainer t(m, cfg, td, multi ? &group_->world() : nullptr);
    if (t.resume_if_present()) {
      event(stage_id, "resumed", {{"label", label}, {"checkpoint", cfg.checkpoint_path},
                                  {"step", t.position().step}});
      if (!o_.quiet)
        std::fprintf(stderr, "[%s] resumed from %s at step %lld\n", label.c_str(),
                     cfg.checkpoint_path.c_str(), (long long)t.position().step);
    }
    Progress progress(label, t.total_steps(), o_.quiet);
    steps = t.train([&](const train::StepInfo& s) {
      curve["step"].push_back(s.step);
      curve["loss"].push_back(s.loss);
      curve["lr"].push_back(s.lr);
      curve["tokens_per_s"].push_back(s.tokens_per_s);
      if (multi) {
        json c = dist::to_json(s.comm);
        c["step"] = s.step;
        c["local_tokens"] = s.local_tokens;
        comm_steps.push_back(c);
      }
      char buf[128];
      std::snprintf(buf, sizeof buf, "loss %.4f lr %.2e %s tok/s", s.loss, s.lr,
                    text::rate(s.tokens_per_s).c_str());
      progress.update(s.step, buf);
    });
    if (!save_path.empty()) t.save_checkpoint(save_path);
    total_steps = t.total_steps();
    warmup_steps = t.warmup_steps();
    if (multi) {
      // Every rank's collectives (rank 0's per step, the others' totals through the store) and
      // every rank's meters.
      const auto others = group_->worker_comm(group_->spec().timeout_s);
      dist::CommLog total0;
      for (const auto& s : steps) total0 += s.comm;
      json per_rank = json::array();
      per_rank.push_back({{"rank", 0}, {"steps", steps.size()},
                          {"steps_total", dist::to_json(total0)}});
      for (const auto& o : others) per_rank.push_back(o);
      L_.put_artifact(
          run_id_, stage_id, "comm/" + label,
          {{"what", "collectives per optimizer step by kind (calls; bytes of the data moved: "
                    "all-reduce the tensor, all-gather the full output, reduce-scatter the full "
                    "input, broadcast the tensor; seconds from issue to completion as the rank "
                    "saw it), measured by reproduce/distributed's World on rank 0; the other "
                    "ranks' totals over the steps (steps_total) and over the whole job "
                    "(job_total: the job's broadcast, the initial parameters, consolidation and "
                    "checkpoints too), put in the group's store by each rank"},
           {"world_size", group_->size()},
           {"backend", group_->world().backend()},
           {"parallelism", cfg.parallelism},
           {"rank0_steps", comm_steps},
           {"ranks", per_rank}});
      write_rank_meters(stage_id, label, "succeeded");
    }
  } catch (const RunFailed&) {
    throw;
  } catch (const std::exception& e) {
    if (!multi) throw;
    if (!curve["step"].empty()) L_.put_artifact(run_id_, stage_id, "loss_curve/" + label, curve);
    // One rank failed: every rank stops, and the run is failed with every rank's seconds.
    auto d = group_->dead(3.0);
    group_->kill_workers();
    write_rank_meters(stage_id, label, "failed");
    throw RunFailed(run_id_, (d ? *d + " during " + label + " (rank 0: " + e.what() + ")"
                                : std::string("a rank failed during ") + label + ": " + e.what()) +
                                 "; every rank was stopped and their seconds are in the ledger "
                                 "(stage " + label + ", event rank_meters)");
  }
  L_.put_artifact(run_id_, stage_id, "loss_curve/" + label, curve);
  double tokens = 0, secs = 0;
  for (const auto& s : steps) {
    tokens += double(s.tokens);
    secs += s.seconds;
  }
  event(stage_id, "train_summary",
        {{"label", label}, {"steps", total_steps}, {"tokens", tokens},
         {"final_loss", steps.empty() ? 0.0 : steps.back().loss},
         {"tokens_per_s", secs > 0 ? tokens / secs : 0.0},
         {"parameters", m->config().parameter_count()}, {"rows", data.rows},
         {"cols", data.cols}, {"warmup_steps", warmup_steps},
         {"processes", multi ? group_->size() : 1}, {"parallelism", cfg.parallelism}});
  return steps;
}

// The rank_meters event of a training stage: each rank's figures and where each came from.
void Pipeline::write_rank_meters(int64_t stage_id, const std::string& label,
                                 const std::string& status) {
  json rows = json::array();
  for (const auto& r : group_->readings()) {
    json j = {{"rank", r.rank}, {"host", r.host}, {"pid", r.pid}, {"device", r.device},
              {"cpu_s", r.cpu_s}, {"cpu_source", group_->cpu_source(r.rank)},
              {"peak_rss_bytes", r.peak_rss},
              {"peak_rss_source", r.rank == 0 ? "getrusage ru_maxrss of rank 0 (its life so far)"
                                               : "getrusage ru_maxrss of the rank (its life so "
                                                 "far; wait4's when it ended)"},
              {"reading_final", r.final}};
    if (r.rank != 0 && r.pid == 0)
      j["note"] = "no meter reading of this job reached the store";
    if (!r.gpu_source.empty()) {
      j["gpu_busy_s"] = r.gpu_busy_s;
      j["gpu_energy_j"] = r.gpu_energy_j;
      j["gpu_peak_mem_bytes"] = r.gpu_peak_mem;
      j["gpu_source"] = r.gpu_source;
    } else if (r.rank == 0 && device_ == "cuda") {
      j["gpu_source"] = "the stage's own GPU meter (NVML, every GPU of this machine's ranks)";
    }
    rows.push_back(j);
  }
  event(stage_id, "rank_meters",
        {{"label", label}, {"status", status}, {"world_size", group_->size()},
         {"backend", group_->world().backend()}, {"ranks", rows},
         {"what", "each rank's CPU since the stage (rank 0) or the job (the others) began, its "
                  "peak memory, and its own GPU where metered; the stage's cpu_s is their sum"}});
}

void Pipeline::pretrain() {
  ledger::StageMeter meter(L_, run_id_, "pretrain", train_meter_opts());
  const auto& b = r_.base;
  auto docs = fmt_->documents(splits_.pretrain, datasets::LossOn::all);
  auto packed = datasets::pack_sequences(docs, iota(docs.size()), int(b.pretrain_seq_len),
                                         fmt_->pad_id());
  event(meter.stage_id(), "pretrain_data",
        {{"examples", splits_.pretrain.size()}, {"packing", packed.stats}});
  torch::manual_seed(uint64_t(r_.train.seed));
  base_ = model::CausalLM(model::ModelConfig(r_.base));
  model::init_weights(base_, uint64_t(r_.train.seed));
  // The recipe's [train] settings (warmup, lr floor, AdamW beta1 and epsilon, clipping, seed,
  // threads) with the pretraining's own lr, batch and steps from [base].
  train::TrainConfig cfg(r_.train);
  cfg.lr = b.pretrain_lr;
  cfg.global_batch = b.pretrain_batch;
  cfg.micro_batch = 0;  // = global_batch
  cfg.max_steps = b.pretrain_steps;
  cfg.epochs = std::max<int64_t>(1, (b.pretrain_steps * b.pretrain_batch + packed.blocks.rows - 1) /
                                        std::max(1, packed.blocks.rows));
  cfg.beta2 = 0.99;  // pretraining's; the SFT stage uses the claimed betas and weight decay
  cfg.weight_decay = 0.01;
  train_model(base_, packed.blocks, cfg, "pretrain", meter.stage_id());
  meter.finish();
}

// The base model from its checkpoint (memory-mapped, converted once to fp32, straight to the
// device); the stage's meter makes the loading time part of the run's measured cost.
void Pipeline::load_base() {
  ledger::StageMeter meter(L_, run_id_, "load_base", meter_opts());
  const auto t0 = std::chrono::steady_clock::now();
  base_ = model::load_model(checkpoint_.string(), torch::Device(device_), torch::kFloat32);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  event(meter.stage_id(), "base_checkpoint",
        {{"dir", checkpoint_.string()}, {"model", base_->config().to_string()},
         {"parameters", base_->config().parameter_count()}, {"load_seconds", secs},
         {"format", fmt_->describe()}});
  if (!o_.quiet)
    std::fprintf(stderr, "[load_base] %s: %s parameters in %s\n", checkpoint_.string().c_str(),
                 text::num(double(base_->config().parameter_count())).c_str(),
                 text::duration(secs).c_str());
  meter.finish();
}

void Pipeline::distill() {
  ledger::StageMeter meter(L_, run_id_, "distill", meter_opts());
  Progress progress("distill", int64_t(splits_.pool.size()), o_.quiet);
  pool_ = splits_.pool;
  double trace_tokens = 0;
  for (size_t i = 0; i < pool_.size(); ++i) {
    auto sol = datasets::solve(pool_[i].question);  // the teacher: the exact solver
    pool_[i].trace = sol.trace;
    pool_[i].answer = sol.answer;
    trace_tokens += double(fmt_->tokenizer().encode(sol.trace).size() +
                           fmt_->tokenizer().encode(sol.answer).size());
    if (i % 500 == 0 || i + 1 == pool_.size()) progress.update(int64_t(i + 1));
  }
  event(meter.stage_id(), "teacher_tokens",
        {{"teacher", r_.data.teacher}, {"teacher_name", r_.data.teacher_name},
         {"questions", pool_.size()}, {"output_tokens", trace_tokens},
         {"tokens_per_sample", pool_.empty() ? 0.0 : trace_tokens / double(pool_.size())}});
  teacher_tokens_ = trace_tokens;
  teacher_questions_ = int64_t(pool_.size());
  meter.finish();
}

void Pipeline::select() {
  ledger::StageMeter meter(L_, run_id_, "select", meter_opts());
  datasets::SelectionConfig sc;
  sc.n = size_t(r_.data.select_n);
  sc.quality = r_.data.filter_quality;
  sc.difficulty = r_.data.filter_difficulty;
  sc.diversity = r_.data.filter_diversity;
  sc.seed = uint64_t(r_.data.seed);
  // Difficulty: the base model answers the whole pool (metered inference, as s1 ran Qwen).
  std::vector<bool> base_correct(pool_.size(), false);
  if (sc.difficulty) {
    eval::EvalSettings es;
    es.max_new_tokens = r_.eval.max_new_tokens;
    Progress progress("select: base inference", int64_t(pool_.size()), o_.quiet);
    auto out = eval::evaluate(base_, *fmt_, pool_, es,
                                [&](int64_t d, int64_t) { progress.update(d); });
    base_correct = out.correct_flags;
    inference_tokens_ += out.generated_tokens;
    event(meter.stage_id(), "difficulty_inference",
          {{"model", "base"}, {"questions", out.n}, {"base_correct", out.correct},
           {"generated_tokens", out.generated_tokens}});
  }
  auto sel = datasets::select_s1(pool_, base_correct, sc);
  selected_ = sel.examples;
  L_.put_artifact(run_id_, meter.stage_id(), "selection_counts", json(sel.counts));
  // Decontamination: every training text (pretraining documents, selected SFT samples with
  // their traces) against every test set's questions.
  std::vector<datasets::TextSet> training = {datasets::documents_of("pretrain", splits_.pretrain),
                                             datasets::documents_of("sft", selected_)};
  std::vector<datasets::TextSet> tests;
  for (const auto& [name, set] : splits_.test_sets()) tests.push_back(datasets::questions_of(name, *set));
  auto report = datasets::decontaminate(training, tests);
  L_.put_artifact(run_id_, meter.stage_id(), "decontamination", json(report));
  if (!o_.quiet)
    std::fprintf(stderr, "[select] pool %zu -> quality %zu -> difficulty %zu -> selected %zu\n",
                 sel.counts.pool, sel.counts.after_quality, sel.counts.after_difficulty,
                 sel.counts.selected);
  meter.finish();
}

// data.source = "jsonl": the file is the selected training set (s1K is the output of s1's
// filters). Its token counts, the teacher's bill they imply, and its overlap with every
// benchmark file are recorded; the reading and rendering happened before the run was opened.
void Pipeline::user_data() {
  ledger::StageMeter meter(L_, run_id_, "data", meter_opts());
  const auto& u = *data_;
  event(meter.stage_id(), "sft_data", u.stats);
  if (!o_.quiet) {
    std::fprintf(stderr,
                 "[data] %s: %zu samples, tokens per sample mean %.0f, p90 %.0f, max %.0f, "
                 "total %s\n",
                 u.path.c_str(), u.records.size(), u.stats["tokens_mean"].get<double>(),
                 u.stats["tokens_p90"].get<double>(), u.stats["tokens_max"].get<double>(),
                 text::num(u.stats["tokens_total"].get<double>()).c_str());
    if (u.truncated > 0)
      std::fprintf(stderr,
                   "[data] %lld of %zu samples are longer than the block of %lld tokens: each is "
                   "cut to its first %lld tokens (%s tokens cut; recorded in sft_data)\n",
                   (long long)u.truncated, u.records.size(), (long long)u.block,
                   (long long)u.block, text::num(u.stats["tokens_cut"].get<double>()).c_str());
  }
  // The teacher wrote the traces elsewhere (an API the claimant paid): its bill is estimated
  // from the traces' measured length in the base's tokenizer over the pool it was asked about.
  const double per_sample = u.records.empty() ? 0 : u.trace_tokens / double(u.records.size());
  const double pool =
      double(r_.data.pool_size_declared > 0 ? r_.data.pool_size_declared : int64_t(u.records.size()));
  teacher_tokens_ = per_sample * pool;
  teacher_questions_ = int64_t(pool);
  event(meter.stage_id(), "teacher_tokens",
        {{"teacher", r_.data.teacher}, {"teacher_name", r_.data.teacher_name},
         {"questions", int64_t(pool)}, {"output_tokens", teacher_tokens_},
         {"tokens_per_sample", per_sample}, {"provenance", "estimated"},
         {"formula", "mean thinking + answer tokens of the training file (base tokenizer, "
                     "measured) x data.pool_size_declared (or the file's size)"}});
  // Decontamination: every training sample (question, thinking, answer) against every
  // benchmark file's questions, at s1's 8-grams and the 13-grams of GPT-3's report.
  std::vector<datasets::TextSet> training(1);
  training[0].name = "sft";
  for (const auto& rec : u.records)
    training[0].texts.push_back(rec.question + "\n" + rec.thinking + "\n" + rec.answer);
  std::vector<datasets::TextSet> tests;
  for (const auto& su : suites_) {
    datasets::TextSet t;
    t.name = su.spec.name;
    for (const auto& it : su.items) t.texts.push_back(it.question);
    tests.push_back(std::move(t));
  }
  json reports = json::object();
  for (int n : {8, 13}) {
    datasets::DecontamConfig dc;
    dc.n = n;
    auto rep = datasets::decontaminate(training, tests, dc);
    reports[std::to_string(n) + "-gram"] = rep;
    if (!o_.quiet)
      for (const auto& set : rep.sets)
        std::fprintf(stderr, "[data] %d-gram overlap: %zu of %zu %s items share %s %d-gram with the training file\n",
                     n, set.items_with_overlap, set.items, set.test_set.c_str(), n == 8 ? "an" : "a", n);
  }
  L_.put_artifact(run_id_, meter.stage_id(), "decontamination", reports);
  // The claimed run's compute with D measured on this file instead of the recipe's length band.
  reproduce::MeasuredTokens mt;
  mt.samples = double(u.records.size());
  mt.mean = u.stats["tokens_mean"].get<double>();
  mt.source = u.path + " rendered with the base's chat template (sft_data event)";
  try {
    L_.put_artifact(run_id_, meter.stage_id(), "claimed_run_estimate",
                    reproduce::estimate_recipe(r_, &mt).to_json());
  } catch (const std::exception& e) {
    event(meter.stage_id(), "claimed_run_estimate_skipped", {{"reason", e.what()}});
  }
  meter.finish();
}

void Pipeline::sft(int64_t seed_index) {
  // Seed 1 is the final run; the others repeat it only to measure the evaluation's spread over
  // seeds, and their stage names say so (ledger::stage_category prices them as evaluation).
  std::string label = std::string(seed_index == 0 ? "" : "repeat-") + "sft-seed" +
                      std::to_string(seed_index + 1);
  ledger::StageMeter meter(L_, run_id_, label, train_meter_opts());
  const auto& t = r_.train;
  auto loss_on = datasets::parse_loss_on(t.loss_on);
  auto seqs = data_ ? data_->seqs : fmt_->documents(selected_, loss_on);
  int block = int(std::min<int64_t>(t.block_size, r_.base.max_position));
  datasets::Batch data;
  json packing_stats;
  if (t.packing) {
    auto packed = datasets::pack_sequences(seqs, iota(seqs.size()), block, fmt_->pad_id());
    data = std::move(packed.blocks);
    packing_stats = packed.stats;
  } else {
    data = datasets::pad_batch(seqs, iota(seqs.size()), block, fmt_->pad_id());
  }
  int64_t truncated = 0;
  for (const auto& sq : seqs) truncated += int64_t(sq.tokens.size()) > block ? 1 : 0;
  // The memory plan at this batch's longest row (JSONL runs were also checked before opening).
  if (seed_index == 0) {
    auto mp = plan::plan_memory(memory_inputs(r_, device_, data.cols));
    event(meter.stage_id(), "memory_plan", mp.to_json());
    if (!o_.quiet) std::fprintf(stderr, "[%s] memory plan:\n%s", label.c_str(), mp.to_text().c_str());
    if (!mp.fits)
      throw std::runtime_error("memory plan: SFT needs " + text::bytes(mp.total_bytes) +
                               ", the device has " + text::bytes(double(mp.device_bytes)));
  }
  model::CausalLM m = clone_model(base_);
  train::TrainConfig cfg(t);  // the claimed schedule as it stands, one seed per repetition
  cfg.seed = t.seed + seed_index;
  // checkpoint_every: a resumable checkpoint in the work folder; a rerun with the same
  // --work-dir continues from it (the trainer checks it belongs to this model and data).
  if (t.checkpoint_every > 0 && !work_.empty())
    cfg.checkpoint_path = (work_ / (label + ".resume.ckpt")).string();
  const int processes = group_ ? group_->size() : 1;
  event(meter.stage_id(), "sft_config",
        {{"seed", t.seed + seed_index}, {"samples", seqs.size()}, {"rows", data.rows},
         {"packing", t.packing}, {"packing_stats", packing_stats}, {"block", block},
         {"truncated_samples", truncated}, {"loss_on", t.loss_on},
         {"supervised_tokens", data.supervised_tokens()}, {"schedule", t.schedule},
         {"precision", device_ == "cuda" ? t.precision : std::string("fp32")},
         {"recompute", t.recompute}, {"checkpoint_every", t.checkpoint_every},
         {"parallelism", processes > 1 ? t.parallelism : std::string("none")},
         {"parallelism_recipe", t.parallelism},
         {"processes", processes},
         {"backend", processes > 1 ? group_->world().backend() : std::string("")},
         {"parallelism_note",
          processes > 1 ? std::to_string(processes) + " processes (" + group_->spec().from +
                              "), " + t.parallelism + " on " + group_->world().backend()
          : t.parallelism == "none"
              ? "one process"
              : "one process: the recipe's " + t.parallelism +
                    " shards nothing at world size 1, so it computes what \"none\" computes "
                    "(several processes: audit run --nproc N, docs/distributed.md)"}});
  train_model(m, data, cfg, label, meter.stage_id());
  // The tuned model as a Hugging Face checkpoint folder (config.json, model.safetensors and the
  // base's tokenizer files), which transformers loads as it is.
  if (seed_index == 0 && !work_.empty()) {
    const fs::path out = work_ / (label + "-hf");
    model::save_checkpoint(m, out.string(), checkpoint_.string());
    event(meter.stage_id(), "model_saved", {{"dir", out.string()}, {"format", "huggingface"}});
  }
  tuned_.push_back(m);
  meter.finish();
}

void Pipeline::eval() {
  ledger::StageMeter meter(L_, run_id_, "eval", meter_opts());
  const auto& e = r_.eval;
  const bool synthetic = !launch_ && r_.data.source == "synthetic";
  auto sets = synthetic ? splits_.test_sets() : decltype(splits_.test_sets()){};
  const int64_t models = (base_ ? 1 : 0) + int64_t(tuned_.size());
  const int64_t sweeps = int64_t(tuned_.size()) * int64_t(e.think_budgets.size() + (e.wait_extensions > 0));
  int64_t total = int64_t(sets.size()) * models + int64_t(suites_.size()) * models +
                  (synthetic || !suites_.empty() ? sweeps : 0);
  Progress progress("eval", total, o_.quiet, 5.0);
  int64_t done = 0;
  auto record = [&](const std::string& model_name, int64_t seed, const std::string& split,
                    int64_t budget, const std::string& suite, bool ood, int64_t n, int64_t correct,
                    double accuracy, double lo, double hi, double generated) {
    ledger::EvalResult r;
    r.run_id = run_id_;
    r.model = model_name;
    r.suite = suite;
    r.split = split == "id_test" ? "id" : split;
    r.ood = ood;
    r.seed = seed;
    r.budget = budget;
    r.n = n;
    r.correct = correct;
    r.score = accuracy;
    r.ci_low = lo;
    r.ci_high = hi;
    L_.add_eval(r);
    inference_tokens_ += generated;
    progress.update(++done, model_name + " " + r.split + " " + std::to_string(correct) + "/" +
                                std::to_string(n));
  };
  auto record_outcome = [&](const std::string& model_name, int64_t seed, const std::string& split,
                            int64_t budget, const std::string& suite, const eval::EvalOutcome& out) {
    const std::string sp = split == "id_test" ? "id" : split;
    record(model_name, seed, split, budget, suite, sp != "id", out.n, out.correct, out.accuracy,
           out.ci_low, out.ci_high, out.generated_tokens);
  };
  eval::EvalSettings es;
  es.max_new_tokens = e.max_new_tokens;
  es.temperature = e.greedy ? 0.0 : e.temperature;
  es.batch_size = e.batch_size;
  if (synthetic) {
    // The base model is evaluated once: it was pretrained once, and greedy decoding is
    // deterministic, so repeating it per seed would only copy the same row.
    for (const auto& [name, set] : sets)
      record_outcome("base", 0, name, -1, "arith", eval::evaluate(base_, *fmt_, *set, es));
    // Where each tuned model's traces first go wrong, per seed and split (datasets::first_trace_error).
    json trace_errors = json::object();
    for (size_t s = 0; s < tuned_.size(); ++s) {
      int64_t seed = r_.train.seed + int64_t(s);
      es.seed = uint64_t(seed);
      for (const auto& [name, set] : sets) {
        auto es_s = es;
        es_s.keep_completions = s == 0;
        auto out = eval::evaluate(tuned_[s], *fmt_, *set, es_s);
        if (s == 0) {
          // Every completion of the first seed, so that any error analysis can be redone from
          // the ledger alone.
          json items = json::array();
          for (size_t i = 0; i < out.completions.size(); ++i)
            items.push_back({(*set)[i].question, out.completions[i], bool(out.correct_flags[i])});
          event(meter.stage_id(), "eval_completions",
                {{"model", "tuned"}, {"seed", seed}, {"split", name},
                 {"fields", {"question", "completion", "correct"}}, {"items", items}});
        }
        trace_errors[std::to_string(seed)][name == "id_test" ? "id" : name] = out.trace_errors;
        record_outcome("tuned", seed, name, -1, "arith", out);
      }
      // Accuracy against the thinking budget (ID), and s1's "Wait" extension.
      for (int64_t b : e.think_budgets) {
        auto es_b = es;
        es_b.think_budget = b;
        record_outcome("tuned", seed, "id_test", b, "budget_forcing",
                       eval::evaluate(tuned_[s], *fmt_, splits_.id_test, es_b));
      }
      if (e.wait_extensions > 0) {
        auto es_w = es;
        es_w.waits = e.wait_extensions;
        record_outcome("tuned", seed, "id_test", -1, "wait_x" + std::to_string(e.wait_extensions),
                       eval::evaluate(tuned_[s], *fmt_, splits_.id_test, es_w));
      }
    }
    L_.put_artifact(run_id_, meter.stage_id(), "trace_errors",
                    {{"what", "per tuned seed and split, how many completions first depart from the "
                              "solver's trace at each kind of line (datasets/tasks/tasks.h first_trace_error)"},
                     {"kinds", datasets::trace_error_kinds()},
                     {"tuned", trace_errors}});
  }
  if (!suites_.empty()) {
    // Benchmark files: base and every tuned seed on every suite, each completion logged; the
    // budget sweep and the "Wait" extension on the first in-distribution suite (or the first).
    eval::SuiteSettings ss;
    static_cast<eval::EvalSettings&>(ss) = es;
    ss.top_p = e.greedy ? 1.0 : e.top_p;
    ss.samples = e.samples;
    auto run_suite = [&](model::CausalLM& m, const std::string& model_name, int64_t seed,
                         const suites::Suite& su, int64_t budget, int64_t waits,
                         const std::string& suite_label) {
      auto s2 = ss;
      s2.seed = uint64_t(seed);
      s2.think_budget = budget;
      s2.waits = waits;
      auto out = eval::evaluate_suite(m, *fmt_, su, s2);
      record(model_name, seed, su.spec.name, budget, suite_label, su.spec.ood, out.n, out.correct,
             out.accuracy, out.ci_low, out.ci_high, out.generated_tokens);
      std::string name = "samples/" + model_name + "-seed" + std::to_string(seed) + "/" + su.spec.name;
      if (suite_label != su.spec.name) name += "/" + suite_label + (budget >= 0 ? "-" + std::to_string(budget) : "");
      L_.put_artifact(run_id_, meter.stage_id(), name,
                      {{"suite", su.spec.name}, {"kind", suites::to_string(su.spec.kind)},
                       {"model", model_name}, {"seed", seed}, {"budget", budget}, {"waits", waits},
                       {"samples", out.rows}});
    };
    if (base_)  // a launch run without base.checkpoint evaluates only what the command wrote
      for (const auto& su : suites_) run_suite(base_, "base", 0, su, -1, 0, su.spec.name);
    const suites::Suite* sweep = &suites_.front();
    for (const auto& su : suites_)
      if (!su.spec.ood) {
        sweep = &su;
        break;
      }
    for (size_t s = 0; s < tuned_.size(); ++s) {
      const int64_t seed = r_.train.seed + int64_t(s);
      for (const auto& su : suites_) run_suite(tuned_[s], "tuned", seed, su, -1, 0, su.spec.name);
      if (synthetic) continue;  // the miniature sweeps its own ID split above
      for (int64_t b : e.think_budgets) run_suite(tuned_[s], "tuned", seed, *sweep, b, 0, "budget_forcing");
      if (e.wait_extensions > 0)
        run_suite(tuned_[s], "tuned", seed, *sweep, -1, e.wait_extensions,
                  "wait_x" + std::to_string(e.wait_extensions));
    }
  }
  event(meter.stage_id(), "inference_tokens", {{"generated_tokens", inference_tokens_}});
  meter.finish();
}

void Pipeline::costs() {
  ledger::CostInputs in;
  ledger::RunMetering m;
  m.run_id = run_id_;
  m.status = "succeeded";
  m.stages = L_.stages(run_id_);
  m.gpu_type = priced_gpu_type(device_);
  in.final_run = m;
  // Failed and aborted runs of the same claim in this ledger are part of the real cost.
  for (const auto& ri : L_.runs()) {
    if (ri.id == run_id_ || ri.name != r_.claim.name) continue;
    if (ri.status != ledger::RunStatus::failed && ri.status != ledger::RunStatus::aborted) continue;
    ledger::RunMetering f;
    f.run_id = ri.id;
    f.status = ledger::to_string(ri.status);
    f.stages = L_.stages(ri.id);
    f.gpu_type = priced_gpu_type(ri.device);
    in.failed_runs.push_back(f);
  }
  const auto& c = r_.claim;
  ledger::ClaimFigures cf;
  cf.name = c.name;
  cf.headline = c.headline;
  cf.usd = c.claimed_cost_usd;
  cf.gpu_type = c.gpu_type;
  cf.gpu_count = double(c.gpu_count);
  cf.wall_hours = c.wall_hours;
  cf.gpu_hours = recipe::claimed_gpu_hours(c);
  cf.gpu_hour_usd = c.claimed_gpu_hour_usd;
  cf.source = c.sources.empty() ? "" : c.sources.front();
  in.claim = cf;
  in.claim_as_final_run = false;
  // The teacher's bill: output tokens counted here, priced per token as the recipe declares.
  ledger::ExtraItem t;
  t.category = "data_generation";
  t.description = "teacher output tokens for the " + std::to_string(teacher_questions_) +
                  "-question pool (" + (r_.data.teacher_name.empty() ? r_.data.teacher : r_.data.teacher_name) + ")";
  t.quantity = teacher_tokens_ / 1e6;
  t.unit = "1M tokens";
  t.provenance = ledger::Provenance::estimated;
  t.inputs = {{"output_tokens", teacher_tokens_}, {"questions", teacher_questions_}};
  if (data_) {
    t.formula = "mean thinking + answer tokens per sample of " + data_->path +
                " (measured in the base's tokenizer) x " + std::to_string(teacher_questions_) +
                " questions / 1e6 x API price band";
    t.source = "token counts measured here on the training file (the teacher's own tokenizer "
               "may count differently); pool size declared (data.pool_size_declared); price "
               "from [prices] api_usd_per_mtok or the shipped table";
  } else {
    t.formula = "output tokens counted in the distill stage / 1e6 x API price band";
    t.source = "measured token count; price from [prices] api_usd_per_mtok or the shipped table";
  }
  if (launch_) {
    // The claimant's command brought its own data: the teacher's bill is the recipe's declared
    // tokens per sample over the declared pool, when it states them.
    const double per = r_.data.teacher_tokens_per_sample;
    const double pool = double(r_.data.pool_size_declared);
    t.description = "teacher output tokens for the " + text::num(pool) + "-question pool (" +
                    (r_.data.teacher_name.empty() ? r_.data.teacher : r_.data.teacher_name) + ")";
    t.quantity = per * pool / 1e6;
    t.inputs = {{"tokens_per_sample", per}, {"questions", pool}};
    t.formula = "data.teacher_tokens_per_sample x data.pool_size_declared / 1e6 x API price band";
    t.source = "declared by the recipe (the launched command's data is not read by audit); price "
               "from [prices] api_usd_per_mtok or the shipped table";
  }
  if (!launch_ || t.quantity > 0) in.extras.push_back(t);
  auto items = ledger::build_cost_items(in, reproduce::prices_from_recipe(r_));
  L_.transaction([&] {
    for (auto& item : items) {
      item.run_id = run_id_;
      L_.add_cost_item(item);
    }
  });
}

// [launch]: the claimant's command as the final run, metered as a process tree with every GPU it
// can use; its output parsed into the loss curve; the budget guard priced as the detected GPU.
void Pipeline::launch_train() {
  const auto& L = r_.launch;
  const LaunchGpus& g = *launch_;
  event(0, "launch_gpus",
        {{"indices", g.indices}, {"names", g.names}, {"gpu_type", g.gpu_type},
         {"priced_as", g.priced_as}, {"note", g.note}});
  launch::Command c = launch_command(L.command, recipe::launch_workdir(r_), L.env);
  launch::Limits lim = launch_limits(L.timeout);
  auto parser = train_logs::parser_for(L.log_format, L.log_regex);
  std::vector<train_logs::LogPoint> points;
  // The budget guard prices the tree's metered time as the cost model will: GPU-hours of every
  // GPU the command can use at the detected GPU's price band (mid); CPU-hours on a machine
  // without GPUs (with GPUs, the CPU is inside the GPU-hour price).
  const auto prices = reproduce::prices_from_recipe(r_);
  launch::Budget budget;
  budget.max_gpu_hours = L.max_gpu_hours;
  budget.max_usd = L.max_usd;
  budget.gpu_count = int(g.indices.size());
  if (!g.indices.empty())
    budget.usd_per_gpu_hour = prices.get(ledger::gpu_hour_key(g.gpu_type)).band.mid;
  else
    budget.usd_per_cpu_hour = prices.get(ledger::price_keys::kCpuHour).band.mid;
  // The tree's pids, for the GPU meter to tell the command's GPU processes from others'.
  std::mutex pids_mu;
  std::set<int> tree_pids;
  launch::Callbacks cb;
  cb.on_line = [&](std::string_view line, bool is_stderr) {
    if (!o_.quiet)
      std::fprintf(stderr, "[launch%s] %.*s\n", is_stderr ? " stderr" : "", int(line.size()),
                   line.data());
    if (parser)
      if (auto p = parser->feed(line)) points.push_back(*p);
  };
  cb.check = [&](const launch::TreeSample& s) -> std::string {
    {
      std::lock_guard<std::mutex> lk(pids_mu);
      tree_pids.clear();
      for (int64_t p : s.pids) tree_pids.insert(int(p));
    }
    return launch::budget_reason(budget, s);
  };
  ledger::MeterOptions mo;
  mo.interval_s = o_.meter_interval_s;
  mo.gpus = g.indices;
  mo.pid_filter = [&] {
    std::lock_guard<std::mutex> lk(pids_mu);
    return tree_pids;
  };
  if (!o_.quiet)
    std::fprintf(stderr, "[launch] %s in %s%s\n", join_argv(c.argv).c_str(), c.workdir.c_str(),
                 g.indices.empty() ? " (no GPU metered)" : (" on " + std::to_string(g.indices.size()) +
                                                           " x " + g.gpu_type).c_str());
  auto out = launch::run_stage(L_, run_id_, "launch", c, lim, cb, mo);
  const int64_t stage = L_.stages(run_id_).back().id;
  if (parser) {
    if (!points.empty())
      L_.put_artifact(run_id_, stage, "loss_curve/launch",
                      train_logs::loss_curve_json(
                          points, "parsed from the launched command's output, " + parser->format() + " format",
                          parser->summary()));
    event(stage, "launch_log", {{"format", parser->format()}, {"points", points.size()},
                                {"summary", parser->summary()}});
    if (!o_.quiet && points.empty())
      std::fprintf(stderr, "[launch] no loss line was found in the output (log_format = \"%s\")\n",
                   L.log_format.c_str());
  }
  if (out.status == "interrupted")
    throw RunFailed(run_id_, "the launched command was " + out.stop_reason +
                                 "; its seconds are in the ledger (stage launch, aborted)", 130);
  if (out.status != "succeeded")
    throw RunFailed(run_id_, "the launched command " +
                                 (out.stop_reason.empty()
                                      ? (out.term_signal ? "was killed by signal " + std::to_string(out.term_signal)
                                                         : "exited with code " + std::to_string(out.exit_code))
                                      : "was stopped: " + out.stop_reason) +
                                 " after " + text::duration(out.wall_s) +
                                 "; its seconds are in the ledger (stage launch) and billed as a "
                                 "failed run of " + r_.claim.name);
}

// What the command wrote into launch.output_dir, loaded as the tuned model (a Hugging Face
// checkpoint with its tokenizer and chat template); metered as evaluation.
void Pipeline::load_output() {
  const auto& L = r_.launch;
  if (L.output_dir.empty()) return;
  ledger::StageMeter meter(L_, run_id_, "eval-load", meter_opts());
  const fs::path dir = fs::path(recipe::launch_workdir(r_)) / L.output_dir;
  try {
    hf::open_checkpoint(dir.string());
    auto f = checkpoint_format(dir.string());
    if (!fmt_) fmt_ = std::move(f);
  } catch (const InputError& e) {
    throw RunFailed(run_id_, "launch.output_dir: " + dir.string() +
                                 " holds no checkpoint audit can evaluate after the command "
                                 "succeeded: " + e.what());
  }
  auto m = model::load_model(dir.string(), torch::Device(device_), torch::kFloat32);
  event(meter.stage_id(), "launch_output",
        {{"dir", dir.string()}, {"model", m->config().to_string()},
         {"parameters", m->config().parameter_count()}});
  tuned_.push_back(m);
  meter.finish();
}

// [launch.eval]: an external evaluator (lm-eval) run and metered as evaluation; its results
// JSON read into the ledger's evals, one row per task (the metric chosen is recorded).
void Pipeline::launch_eval() {
  const auto& E = r_.launch.eval;
  if (!E.set) return;
  launch::Command c = launch_command(E.command, recipe::launch_eval_workdir(r_), E.env);
  launch::Limits lim = launch_limits(E.timeout);
  launch::Callbacks cb;
  cb.on_line = [&](std::string_view line, bool is_stderr) {
    if (!o_.quiet)
      std::fprintf(stderr, "[eval-launch%s] %.*s\n", is_stderr ? " stderr" : "", int(line.size()),
                   line.data());
  };
  ledger::MeterOptions mo;
  mo.interval_s = o_.meter_interval_s;
  mo.gpus = launch_->indices;
  auto out = launch::run_stage(L_, run_id_, "eval-launch", c, lim, cb, mo);
  const int64_t stage = L_.stages(run_id_).back().id;
  if (out.status != "succeeded")
    throw RunFailed(run_id_, "the [launch.eval] command " +
                                 (out.stop_reason.empty() ? "exited with code " + std::to_string(out.exit_code)
                                                          : "was stopped: " + out.stop_reason));
  const std::string path = (fs::path(c.workdir) / E.results).string();
  std::vector<lm_eval::LmEvalResult> rows;
  try {
    rows = lm_eval::read_lm_eval_results(path);
  } catch (const InputError& e) {
    throw RunFailed(run_id_, std::string("launch.eval.results: ") + e.what());
  }
  // One accuracy per task: the first of these metrics the task reports.
  static const std::vector<std::string> preferred = {
      "exact_match,strict-match", "exact_match,flexible-extract", "exact_match,none",
      "acc,none", "acc_norm,none", "pass@1,none", "pass_at_1,none"};
  std::vector<lm_eval::LmEvalResult> chosen;
  for (const auto& r : rows) {
    if (std::any_of(chosen.begin(), chosen.end(), [&](const auto& c2) { return c2.task == r.task; }))
      continue;
    const lm_eval::LmEvalResult* best = nullptr;
    for (const auto& want : preferred) {
      for (const auto& r2 : rows)
        if (r2.task == r.task && r2.metric == want && r2.n > 0) {
          best = &r2;
          break;
        }
      if (best) break;
    }
    if (best) chosen.push_back(*best);
  }
  json file_rows = json::array();
  for (const auto& r : rows)
    file_rows.push_back({{"task", r.task}, {"metric", r.metric}, {"value", r.value},
                         {"stderr", r.has_stderr ? json(r.stderr_) : json(nullptr)}, {"n", r.n}});
  L_.put_artifact(run_id_, stage, "lm_eval_results",
                  {{"file", rows.empty() ? path : rows.front().file},
                   {"lm_eval_version", rows.empty() ? "" : rows.front().lm_eval_version},
                   {"model_name", rows.empty() ? "" : rows.front().model_name},
                   {"rows", file_rows},
                   {"chosen", [&] {
                      json j = json::array();
                      for (const auto& r : chosen) j.push_back({{"task", r.task}, {"metric", r.metric}});
                      return j;
                    }()},
                   {"rule", "per task, the first of exact_match (strict-match, flexible-extract, "
                            "none), acc, acc_norm, pass@1 with a sample count"}});
  lm_eval::EvalRowOptions opt;
  opt.model = "tuned";
  opt.seed = r_.train.seed;
  auto evals = lm_eval::to_eval_results(chosen, opt);
  for (auto& e : evals) {
    e.run_id = run_id_;
    e.split = e.suite;  // a benchmark file's rows: the suite is its own split, as [[eval.suites]]
    e.ood = false;
    for (const auto& su : r_.eval.suites)
      if (su.name == e.suite) e.ood = su.ood;
    L_.add_eval(e);
  }
  if (!o_.quiet)
    std::fprintf(stderr, "[eval-launch] %zu task(s) read from %s\n", evals.size(),
                 rows.empty() ? path.c_str() : rows.front().file.c_str());
}

int64_t Pipeline::run() {
  ledger::RunInfo info;
  info.name = r_.claim.name;
  info.recipe_path = r_.path;
  info.recipe_text = r_.resolved_toml;
  info.recipe_sha256 = r_.sha256;
  info.host = ledger::this_host();
  info.git_commit = git_commit();
  // A launch run is "cuda" when its command had GPUs to use (its own choice of device).
  info.device = launch_ ? (launch_->indices.empty() ? "cpu" : "cuda") : device_;
  info.pid = ::getpid();
  info.node_rank = o_.node_rank;
  info.nnodes = o_.nnodes;
  info.node_from = o_.node_from;
  run_id_ = L_.begin_run(info);
  ledger::record_branch_from_env(L_, run_id_);  // the CI's branch, for dashboard baselines
  if (o_.work_dir.empty())
    work_ = fs::path(o_.ledger + ".runs") / std::to_string(run_id_);
  else
    work_ = o_.work_dir;
  if (!o_.quiet)
    std::fprintf(stderr, "audit run: run %lld of %s (recipe sha256 %.12s) into %s on %s\n",
                 (long long)run_id_, r_.claim.name.c_str(), r_.sha256.c_str(), o_.ledger.c_str(),
                 device_.c_str());
  try {
    fs::create_directories(work_);  // inside: a run that cannot write its folder ends failed
    if (r_.train.threads > 0) torch::set_num_threads(int(r_.train.threads));
    event(0, "environment",
          {{"torch_threads", torch::get_num_threads()}, {"device", device_},
           {"format", fmt_ ? fmt_->describe() : json("none (the launched command's own)")},
           {"version", version()}});
    if (launch_) {
      launch_train();
      if (!checkpoint_.empty()) load_base();
      load_output();
      launch_eval();
      if (!suites_.empty() && !tuned_.empty()) eval();
      costs();
      reports::store_verdicts(L_, run_id_);
      L_.end_run(run_id_, ledger::RunStatus::succeeded);
      return run_id_;
    }
    if (r_.data.source == "synthetic") {
      datasets::SplitConfig sc;
      sc.seed = uint64_t(r_.data.seed);
      sc.train_ops = r_.data.operations;
      sc.heldout_ops = r_.data.ood_heldout_op.empty() ? std::vector<std::string>{}
                                                      : std::vector<std::string>{r_.data.ood_heldout_op};
      sc.min_digits = int(r_.data.min_digits);
      sc.max_digits = int(r_.data.max_digits);
      sc.long_min_digits = int(r_.data.ood_long_digits);
      sc.long_max_digits = int(r_.data.ood_long_max_digits);
      sc.ood_format = r_.data.ood_format;
      sc.pool_size = size_t(r_.data.pool_size);
      sc.id_test_size = size_t(r_.eval.n_id);
      sc.ood_test_size = size_t(r_.eval.n_ood);
      sc.pretrain_size = size_t(r_.base.pretrain_examples);
      sc.pretrain_skills_fraction = r_.base.pretrain_skills_fraction;
      splits_ = datasets::make_splits(sc);
      datasets::check_disjoint(splits_.all());
      L_.put_artifact(run_id_, 0, "splits", datasets::summary(splits_));
    }
    if (!memory_.lines.empty()) event(0, "memory_plan", memory_.to_json());
    if (checkpoint_.empty())
      pretrain();
    else
      load_base();
    if (data_) {
      user_data();
    } else {
      distill();
      select();
    }
    // epochs = 0: no SFT stage; the base model is evaluated as it was loaded.
    if (r_.train.epochs > 0)
      for (int64_t s = 0; s < r_.eval.seeds; ++s) sft(s);
    eval();
    costs();
    // The verdicts are stored when the run ends (the report only reads them).
    reports::store_verdicts(L_, run_id_);
    L_.end_run(run_id_, ledger::RunStatus::succeeded);
  } catch (const RunFailed& e) {
    // A [launch] command that failed, was stopped or was interrupted: the run ends failed (or
    // aborted for Ctrl-C) with what it metered and the verdicts of that.
    try {
      reports::store_verdicts(L_, run_id_);
    } catch (...) {
    }
    try {
      L_.end_run(run_id_, e.exit_code == 130 ? ledger::RunStatus::aborted : ledger::RunStatus::failed);
    } catch (...) {
    }
    throw;
  } catch (...) {
    // A failed run ends with the verdicts of what it metered too (mostly "not reproducible
    // here", with the reason); a ledger that cannot take them does not hide the first error.
    try {
      reports::store_verdicts(L_, run_id_);
    } catch (...) {
    }
    try {
      L_.end_run(run_id_, ledger::RunStatus::failed);
    } catch (...) {
    }
    throw;
  }
  return run_id_;
}

}  // namespace

// [launch]: the claimant's command trains; audit meters it and evaluates what it wrote. Checked
// before the run is opened: the recipe's keys (recipe), the GPUs and their price, the base
// checkpoint when one is given (for the base model's scores) and the benchmark files.
int64_t run_launch(const RunOptions& o, recipe::Recipe r) {
  if (!r.launch.workdir_missing.empty())
    throw InputError(r.path, r.launch.workdir_line, r.launch.workdir_column, "launch.workdir",
                     r.launch.workdir_missing);
  if (r.data.source == "jsonl")
    throw InputError(r.path, 0, 0, "data.source",
                     "[launch] runs the claimant's own command on its own data; audit does not "
                     "read a training file for it: remove data.source = \"jsonl\" (the data's "
                     "figures go in [data] as declarations)");
  if (r.launch.output_dir.empty() && !r.eval.suites.empty())
    throw InputError(r.path, 0, 0, "launch.output_dir",
                     "[[eval.suites]] evaluate the checkpoint the command writes: set "
                     "launch.output_dir to the folder it writes it into");
  auto gpus = detect_launch_gpus(r);
  BaseSource base;
  if (!r.base.checkpoint.empty()) {
    base.checkpoint = fs::path(r.path).parent_path() / r.base.checkpoint;
    hf::open_checkpoint(base.checkpoint.string());
    base.format = checkpoint_format(base.checkpoint.string());
  }
  auto suites = read_suites(r);
  Pipeline p(o, std::move(r), std::move(base), std::nullopt, std::move(suites), plan::MemoryPlan{},
             std::move(gpus));
  return p.run();
}

// The group this run trains with: --nproc N (this process is rank 0 of N on this machine) or
// --distributed (torchrun's environment); nullopt for one process. Bad flags are audit::InputError
// naming the flag or variable.
std::optional<dist::WorldSpec> world_spec(const RunOptions& o) {
  if (o.distributed) {
    auto s = dist::spec_from_env();
    if (!s)
      throw InputError("environment", 0, 0, "WORLD_SIZE",
                       "--distributed reads torchrun's environment (RANK, WORLD_SIZE, "
                       "LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and WORLD_SIZE is not set: start "
                       "the ranks with torchrun, or use --nproc N on one machine");
    if (o.device == "cuda" && s->local_rank >= int(torch::cuda::device_count()))
      throw InputError("environment", 0, 0, "LOCAL_RANK",
                       std::to_string(s->local_rank) + " has no CUDA device here (" +
                           std::to_string(torch::cuda::device_count()) + " visible)");
    return s;
  }
  if (o.nproc <= 1) return std::nullopt;
  dist::WorldSpec s;
  s.rank = 0;
  s.world_size = o.nproc;
  s.local_rank = 0;
  s.local_world_size = o.nproc;
  s.master_addr = "127.0.0.1";
  s.from = "--nproc";
  if (const char* t = std::getenv("AUDIT_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double v = std::strtod(t, &end);
    if (end == t || *end != '\0' || v < 1)
      throw InputError("environment", 0, 0, "AUDIT_DIST_TIMEOUT",
                       std::string("'") + t + "' is not a number of seconds >= 1");
    s.timeout_s = v;
  }
  if (o.device == "cuda" && o.nproc > int(torch::cuda::device_count()))
    throw InputError("--nproc", 0, 0, "nproc",
                     std::to_string(o.nproc) + " ranks with --device cuda need " +
                         std::to_string(o.nproc) + " CUDA devices; this machine has " +
                         std::to_string(torch::cuda::device_count()));
  if (o.master_port != 0) {
    if (o.master_port < 1 || o.master_port > 65535)
      throw InputError("--master-port", 0, 0, "master-port",
                       std::to_string(o.master_port) + " is not a TCP port (1..65535)");
    if (!dist::port_free(s.master_addr, o.master_port))
      throw InputError("--master-port", 0, 0, "master-port",
                       "port " + std::to_string(o.master_port) + " on " + s.master_addr +
                           " is in use: choose another, or leave --master-port out for a free one");
    s.master_port = o.master_port;
  } else {
    s.master_port = dist::pick_free_port();
  }
  return s;
}

// What several ranks need from the recipe, checked before any rank starts: a parallelism built
// for several processes, and a resume checkpoint in --work-dir written by this world.
void check_ranks(const recipe::Recipe& r, int world, const RunOptions& o) {
  const std::string& p = r.train.parallelism;
  if (world > 1) {
    if (p == "none")
      throw InputError(r.path, 0, 0, "train.parallelism",
                       "\"none\" trains in one process; with " + std::to_string(world) +
                           " ranks set \"ddp\" or \"fsdp_full_shard\" (--set "
                           "train.parallelism=ddp)");
    if (p != "ddp" && p != "fsdp_full_shard")
      throw InputError(r.path, 0, 0, "train.parallelism",
                       "\"" + p + "\" with several processes is not built; use ddp or "
                       "fsdp_full_shard");
  }
  if (o.work_dir.empty() || r.train.checkpoint_every <= 0 || r.train.epochs <= 0) return;
  const std::string want_par = world > 1 ? p : "none";
  for (int64_t s = 0; s < r.eval.seeds; ++s) {
    const std::string label =
        std::string(s == 0 ? "" : "repeat-") + "sft-seed" + std::to_string(s + 1);
    const fs::path ck = fs::path(o.work_dir) / (label + ".resume.ckpt");
    if (!fs::exists(ck)) continue;
    train::CheckpointInfo info;
    try {
      info = train::read_checkpoint_info(ck.string());
    } catch (const std::exception&) {
      continue;  // the trainer refuses a damaged file itself, naming it
    }
    const std::string had_world = std::to_string(info.world_size);
    const std::string& had_par = info.parallelism;
    if (had_world != std::to_string(world) || (world > 1 && had_par != want_par))
      throw InputError(ck.string(), 0, 0, world > 1 ? "--nproc" : "world_size",
                       "this resume checkpoint was written by " + had_world + " rank(s) with "
                       "parallelism " + had_par + "; this run has " + std::to_string(world) +
                       " with " + want_par + ": resume at the same world size and parallelism, "
                       "or use another --work-dir");
  }
}

int64_t run(const RunOptions& o) {
  auto r = recipe::load_recipe(o.recipe_path, recipe::with_seed(o.sets, o.seed));
  if (o.device == "cuda" && !torch::cuda::is_available())
    throw InputError("--device", 0, 0, "device", "cuda requested but no CUDA device is available");
  if (r.launch.set && (o.nproc > 1 || o.distributed))
    throw InputError(r.path, 0, 0, o.distributed ? "--distributed" : "--nproc",
                     "a [launch] recipe runs the claimant's own command, which starts its own "
                     "ranks (torchrun in launch.command): run it without " +
                         std::string(o.distributed ? "--distributed" : "--nproc"));
  const auto spec = world_spec(o);
  const int world = spec ? spec->world_size : 1;
  if (r.launch.set) return run_launch(o, std::move(r));
  // A model whose weights, gradients and optimizer states alone cannot fit is refused first,
  // with the numbers, before any file is read.
  {
    auto mi = memory_inputs(r, o.device, 1);
    auto p = plan::plan_memory(mi);
    plan::MemoryPlan fixed = p;
    fixed.lines.clear();
    fixed.total_bytes = 0;
    for (const auto& l : p.lines)
      if (l.key == "weights" || l.key == "gradients" || l.key == "optimizer") {
        fixed.lines.push_back(l);
        fixed.total_bytes += l.bytes;
      }
    fixed.lines.push_back({"total", "total before activations", fixed.total_bytes, "sum of the above"});
    if (mi.device_bytes > 0 && fixed.total_bytes > double(mi.device_bytes)) {
      fixed.fits = false;
      refuse_memory(r, fixed, o.device, mi.device_source,
                    "a full fine-tune of " + text::num(double(p.parameters)) +
                        " parameters (weights, gradients and AdamW states alone)");
    }
  }
  check_train_keys(r, o.device);
  if (r.data.source == "jsonl") {
    if (r.base.checkpoint.empty())
      throw InputError(r.path, 0, 0, "base.checkpoint",
                       "data.source = \"jsonl\" fine-tunes a checkpoint: set base.checkpoint "
                       "(--set base.checkpoint=DIR, a Hugging Face model folder)");
    if (r.data.teacher == "solver")
      throw InputError(r.path, 0, 0, "data.teacher",
                       "\"solver\" writes traces for the synthetic task; a JSONL file brings its "
                       "own traces: set teacher = \"api\" (the claim's teacher, declared)");
    if (r.data.teacher == "model")
      throw InputError(r.path, 0, 0, "data.teacher",
                       "a teacher model run here is not built; a JSONL file brings its own traces: "
                       "set teacher = \"api\"");
  }
  auto base = resolve_base(r);
  std::optional<UserData> data;
  plan::MemoryPlan memory;
  if (r.data.source == "jsonl") {
    data = read_user_data(r, *base.format);
    auto mi = memory_inputs(r, o.device, data->longest);
    memory = plan::plan_memory(mi);
    if (!memory.fits)
      refuse_memory(r, memory, o.device, mi.device_source,
                    "SFT at the longest sample (" + std::to_string(data->longest) + " tokens)");
  }
  auto suites = read_suites(r);
  check_ranks(r, world, o);
  // Several ranks: the workers start (--nproc) and the group forms before the run is opened.
  std::unique_ptr<ranks::Group> group;
  if (world > 1) {
    if (!o.quiet)
      std::fprintf(stderr, "audit run: rank 0 of %d (%s), %s on %s:%d\n", world,
                   spec->from.c_str(), r.train.parallelism.c_str(), spec->master_addr.c_str(),
                   spec->master_port);
    group = std::make_unique<ranks::Group>(*spec, ranks::rank_device(o.device, spec->local_rank),
                                           !o.distributed, o.worker_args);
  }
  Pipeline p(o, std::move(r), std::move(base), std::move(data), std::move(suites),
             std::move(memory), std::nullopt, group.get());
  return p.run();
}

int run_worker(const RunOptions& o) {
  auto spec = dist::spec_from_env();
  if (!spec) throw InputError("environment", 0, 0, "WORLD_SIZE", "a worker rank needs WORLD_SIZE");
  // The recipe is rank 0's to check in full; a worker reads it too so that a bad one stops
  // every rank at once with the same message.
  auto r = recipe::load_recipe(o.recipe_path, recipe::with_seed(o.sets, o.seed));
  check_ranks(r, spec->world_size, RunOptions{});
  return ranks::worker_main(o, *spec);
}

}  // namespace audit::pipeline
