// Loading and saving Hugging Face checkpoint directories (see checkpoint.h).
#include "reproduce/model/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"                   // audit::InputError
#include "reproduce/model/safetensors.h"     // to_scalar_type, save

namespace audit::model {

namespace {

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A read-only private mapping of a whole file, unmapped on destruction.
class Mapping {
 public:
  explicit Mapping(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(path, 0, 0, "", std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw InputError(path, 0, 0, "", std::string("cannot stat: ") + std::strerror(errno));
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw InputError(path, 0, 0, "", std::string("cannot mmap: ") + std::strerror(err));
      }
      base_ = static_cast<unsigned char*>(p);
      ::madvise(base_, size_, MADV_SEQUENTIAL);
    }
    ::close(fd);
  }
  ~Mapping() {
    if (base_) ::munmap(base_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  size_t size() const { return size_; }
  unsigned char* data() const { return base_; }
  // Drops the resident pages wholly inside [begin, end) (they are re-read from the file if
  // touched again), so a loaded tensor stops counting in the process's memory.
  void release(size_t begin, size_t end) const {
    const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t b = (begin + page - 1) / page * page, e = end / page * page;
    if (base_ && e > b) ::madvise(base_ + b, e - b, MADV_DONTNEED);
  }

 private:
  std::string path_;
  unsigned char* base_ = nullptr;
  size_t size_ = 0;
};

std::string dtype_config_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kHalf: return "float16";
    default:
      throw std::invalid_argument(std::string("cannot save a checkpoint in ") + c10::toString(t) +
                                  " (float32, bfloat16 or float16)");
  }
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw InputError(from, 0, 0, "", std::string("cannot open: ") + std::strerror(errno));
  const std::string tmp = to + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot open " + tmp + " for writing: " + std::strerror(errno));
    out << in.rdbuf();
    out.flush();
    if (!out) throw std::runtime_error("write failed on " + tmp + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), to.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + to + ": " + std::strerror(errno));
}

void make_dirs(const std::string& dir) {
  std::string sofar;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    sofar = dir.substr(0, pos);
    if (sofar.empty()) continue;
    if (::mkdir(sofar.c_str(), 0755) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create directory " + sofar + ": " + std::strerror(errno));
  }
}

}  // namespace

ModelConfig model_config(const hf::HfConfig& c) {
  if (!c.loadable())
    throw InputError(c.path, 0, 0, "model_type",
                     "\"" + c.model.arch + "\" is counted (estimate, inspect) but not built; "
                     "loadable: qwen2, llama, mistral");
  ModelConfig cfg(c.model);
  try {
    cfg.validate();
  } catch (const std::invalid_argument& e) {
    throw InputError(c.path, 0, 0, "", std::string("the model cannot build this config: ") +
                                           e.what());
  }
  return cfg;
}

void load_checkpoint(CausalLM& m, const hf::CheckpointDir& ckpt) {
  hf::check_tensors(ckpt);
  if (static_cast<const settings::ModelSettings&>(m->cfg) != ckpt.config.model)
    throw InputError(ckpt.config.path, 0, 0, "",
                     "describes " + settings::to_string(ckpt.config.model) +
                         " but the model is " + m->cfg.to_string());
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters();
  std::set<std::string> loaded;
  for (const auto& shard : ckpt.shards) {
    Mapping map(shard.file);
    if (map.size() != shard.header.file_size)
      throw InputError(shard.file, 0, 0, "",
                       "changed size since its header was read (" +
                           std::to_string(shard.header.file_size) + " -> " +
                           std::to_string(map.size()) + " bytes)");
    for (const auto& t : shard.header.tensors) {
      if (hf::is_buffer_name(t.name)) continue;
      if (t.name == "lm_head.weight" && m->cfg.tie_embeddings) continue;  // a copy of embed_tokens
      torch::Tensor* p = params.find(t.name);
      if (p == nullptr)
        throw InputError(shard.file, 0, 0, t.name, "tensor names no parameter of the model");
      if (p->sizes() != c10::IntArrayRef(t.shape))
        throw InputError(shard.file, 0, 0, t.name,
                         "shape " + safetensors::shape_string(t.shape) +
                             " does not match the model's " + c10::str(p->sizes()));
      const size_t begin = shard.header.data_start + t.begin;
      const size_t end = shard.header.data_start + t.end;
      if (t.end > t.begin) {
        auto blob = torch::from_blob(map.data() + begin, t.shape,
                                     torch::TensorOptions()
                                         .dtype(safetensors::to_scalar_type(t.dtype))
                                         .device(torch::kCPU));
        p->copy_(blob);
      }
      map.release(begin, end);
      loaded.insert(t.name);
    }
  }
  for (const auto& p : params)
    if (!loaded.count(p.key()))
      throw InputError(ckpt.dir, 0, 0, p.key(),
                       "missing tensor for parameter of shape " + c10::str(p.value().sizes()));
}

CausalLM load_model(const std::string& dir, torch::Device device, torch::ScalarType dtype) {
  const hf::CheckpointDir ckpt = hf::open_checkpoint(dir);
  hf::check_tensors(ckpt);
  ModelConfig cfg = model_config(ckpt.config);
  cfg.initialize = false;  // every parameter is loaded below
  CausalLM m(cfg);
  m->to(device, dtype);
  load_checkpoint(m, ckpt);
  return m;
}

void save_checkpoint(CausalLM& m, const std::string& dir, const std::string& tokenizer_source_dir) {
  SaveOptions opt;
  opt.tokenizer_source_dir = tokenizer_source_dir;
  save_checkpoint(m, dir, opt);
}

void save_checkpoint(CausalLM& m, const std::string& dir, const SaveOptions& opt) {
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters();
  if (params.is_empty()) throw std::invalid_argument("save_checkpoint: the model has no parameters");
  const torch::ScalarType dtype =
      opt.dtype == torch::ScalarType::Undefined ? params.begin()->value().scalar_type() : opt.dtype;
  const std::string dtype_name = dtype_config_name(dtype);
  if (!opt.tokenizer_source_dir.empty() &&
      !is_file(join(opt.tokenizer_source_dir, "tokenizer.json")))
    throw InputError(join(opt.tokenizer_source_dir, "tokenizer.json"), 0, 0, "",
                     "missing: the tokenizer source directory needs tokenizer.json");
  make_dirs(dir);

  // Group the parameters into shards of at most max_shard_bytes (a larger tensor alone).
  const size_t esize = c10::elementSize(dtype);
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
  uint64_t in_shard = 0, total = 0;
  int64_t numel = 0;
  for (const auto& p : params) {
    const uint64_t n = static_cast<uint64_t>(p.value().numel()) * esize;
    if (!shards.back().empty() && in_shard + n > opt.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().emplace_back(p.key(), p.value());
    in_shard += n;
    total += n;
    numel += p.value().numel();
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (shards.size() == 1) {
    std::vector<std::pair<std::string, torch::Tensor>> ts;
    for (auto& [name, t] : shards[0]) ts.emplace_back(name, t.detach().to(torch::kCPU, dtype));
    safetensors::save_ordered(join(dir, "model.safetensors"), ts, meta);
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    char name[64];
    for (size_t i = 0; i < shards.size(); ++i) {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      std::vector<std::pair<std::string, torch::Tensor>> ts;  // one shard converted at a time
      for (auto& [n, t] : shards[i]) {
        ts.emplace_back(n, t.detach().to(torch::kCPU, dtype));
        weight_map[n] = name;
      }
      safetensors::save_ordered(join(dir, name), ts, meta);
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}, {"total_parameters", numel}}},
                            {"weight_map", weight_map}};
    hf::write_text_file(join(dir, "model.safetensors.index.json"), index.dump(2) + "\n");
  }
  hf::write_config(m->cfg, join(dir, "config.json"), dtype_name, opt.bos_token_ids,
                   opt.eos_token_ids);
  nlohmann::json gen = {{"_from_model_config", true}};
  auto ids = [](const std::vector<int64_t>& v) {
    return v.size() == 1 ? nlohmann::json(v[0]) : nlohmann::json(v);
  };
  if (!opt.bos_token_ids.empty()) gen["bos_token_id"] = ids(opt.bos_token_ids);
  if (!opt.eos_token_ids.empty()) gen["eos_token_id"] = ids(opt.eos_token_ids);
  hf::write_text_file(join(dir, "generation_config.json"), gen.dump(2) + "\n");
  if (!opt.tokenizer_source_dir.empty())
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                          "chat_template.jinja"}) {
      const std::string from = join(opt.tokenizer_source_dir, f);
      if (is_file(from)) copy_file(from, join(dir, f));
    }
}

}  // namespace audit::model
