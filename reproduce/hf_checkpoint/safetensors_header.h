// safetensors headers without LibTorch. A safetensors file is an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the raw little-endian tensor bytes. This reads and checks the header
// only, so `audit model inspect` and the recipe's checkpoint checks need no LibTorch; the LibTorch
// reader and writer (reproduce/model/safetensors.h) build on it.
//
// Every structural check names the file (and the tensor): the header length against the file
// size, the JSON, each entry's dtype, shape and offsets (inside the data area, size equal to
// numel * element size, no overlaps). Failures throw audit::InputError (exit 2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace audit::safetensors {

struct TensorInfo {
  std::string name;
  std::string dtype;            // "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data area
  uint64_t numel() const;
};

// A parsed and checked header.
struct Header {
  std::string path;
  uint64_t file_size = 0;
  uint64_t data_start = 0;  // 8 + header length: where the data area begins in the file
  std::map<std::string, std::string> metadata;
  std::vector<TensorInfo> tensors;      // in header order
  std::map<std::string, size_t> index;  // name -> position in tensors

  bool contains(const std::string& name) const { return index.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws audit::InputError
};

// Reads the header of the file at `path` (only the first 8 + header-length bytes).
Header read_header(const std::string& path);
// Parses `bytes`, which hold at least the first 8 + header-length bytes of a file of
// `file_size` bytes (pass the whole file and its size to check a buffer; the fuzz test does).
Header parse_header(const std::string& bytes, uint64_t file_size, const std::string& path);

// Bytes per element of a safetensors dtype name; 0 when the name is not one.
size_t dtype_size(const std::string& dtype);

// "[896, 151936]"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace audit::safetensors
