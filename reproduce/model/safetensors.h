// Reading and writing safetensors files (the Hugging Face weight format): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the raw little-endian tensor bytes. Used for the golden fixture
// (tests/golden/make_golden.py writes one), for loading real HF checkpoints into
// reproduce/model/model.h, and for saving fine-tuned weights back in the same format.
//
// Every structural check names the file (and the tensor): the header length against the file
// size, the JSON, each entry's dtype, shape and offsets (inside the data area, size equal to
// numel * element size, no overlaps). Failures throw audit::InputError (exit 2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace audit::safetensors {

struct TensorInfo {
  std::string name;
  std::string dtype;           // "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data area
};

// An opened file: the header is parsed and checked up front; tensors are read on demand, so a
// large checkpoint is never held in memory twice.
class File {
 public:
  explicit File(const std::string& path);  // throws audit::InputError
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return infos_; }  // in file order
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws audit::InputError
  // Reads one tensor into a new CPU tensor of its stored dtype.
  torch::Tensor read(const std::string& name) const;
  std::map<std::string, torch::Tensor> read_all() const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
};

// Convenience: every tensor of a file.
std::map<std::string, torch::Tensor> load(const std::string& path);

// Writes tensors (any device; contiguous copies are made) in name order with optional string
// metadata. Written to PATH.tmp and renamed, so a crash never leaves a half file under PATH.
void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// Mapping between safetensors dtype strings and torch dtypes; throws std::invalid_argument.
torch::ScalarType to_scalar_type(const std::string& dtype);
std::string dtype_name(torch::ScalarType t);

}  // namespace audit::safetensors
