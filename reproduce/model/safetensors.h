// Reading and writing safetensors files (the Hugging Face weight format) with LibTorch. The
// header and its structural checks are torch-free, in reproduce/hf_checkpoint/safetensors_header.h
// (format described there); this adds reading tensors into torch::Tensor and writing files. Used
// for the golden fixture (tests/golden/make_golden.py writes one), for loading real HF checkpoints
// (reproduce/model/checkpoint.h maps whole shards instead) and for saving weights back in the
// same format. Failures on bad input throw audit::InputError (exit 2) naming the file and tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "reproduce/hf_checkpoint/safetensors_header.h"  // Header, TensorInfo, the checks

namespace audit::safetensors {

// An opened file: the header is parsed and checked up front; tensors are read on demand, so a
// large checkpoint is never held in memory twice.
class File {
 public:
  explicit File(const std::string& path);  // throws audit::InputError
  const std::string& path() const { return header_.path; }
  const Header& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }  // in file order
  bool contains(const std::string& name) const { return header_.contains(name); }
  const TensorInfo& info(const std::string& name) const { return header_.info(name); }
  // Reads one tensor into a new CPU tensor of its stored dtype.
  torch::Tensor read(const std::string& name) const;
  std::map<std::string, torch::Tensor> read_all() const;

 private:
  Header header_;
};

// Convenience: every tensor of a file.
std::map<std::string, torch::Tensor> load(const std::string& path);

// Writes tensors (any device; contiguous copies are made) in name order with optional string
// metadata. Written to PATH.tmp and renamed, so a crash never leaves a half file under PATH.
void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});
// The same for tensors given in order (a shard of a checkpoint, written in the order given).
void save_ordered(const std::string& path,
          const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// Mapping between safetensors dtype strings and torch dtypes; throws std::invalid_argument.
torch::ScalarType to_scalar_type(const std::string& dtype);
std::string dtype_name(torch::ScalarType t);

}  // namespace audit::safetensors
