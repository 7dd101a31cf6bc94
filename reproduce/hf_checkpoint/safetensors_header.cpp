// safetensors header parsing and its structural checks (format in safetensors_header.h).
#include "reproduce/hf_checkpoint/safetensors_header.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/errors.h"  // audit::InputError

namespace audit::safetensors {

namespace {

// The header of a real checkpoint is a few MB at most; refuse absurd lengths before allocating.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void fail(const std::string& path, const std::string& key, const std::string& what) {
  throw InputError(path, 0, 0, key, what);
}

uint64_t read_le64(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

bool little_endian_host() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

uint64_t header_length(const std::string& bytes, uint64_t file_size, const std::string& path) {
  if (!little_endian_host()) fail(path, "", "safetensors needs a little-endian host");
  if (file_size < 8 || bytes.size() < 8)
    fail(path, "", "too short for a safetensors file (" + std::to_string(file_size) +
                       " bytes; the first 8 bytes hold the header length)");
  const uint64_t n = read_le64(reinterpret_cast<const unsigned char*>(bytes.data()));
  if (n > kMaxHeaderBytes || n > file_size - 8)
    fail(path, "", "header length " + std::to_string(n) + " exceeds the file (" +
                       std::to_string(file_size) + " bytes): truncated or not safetensors");
  return n;
}

}  // namespace

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (auto d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

size_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const TensorInfo& Header::info(const std::string& name) const {
  auto it = index.find(name);
  if (it == index.end()) fail(path, name, "no such tensor in the file");
  return tensors[it->second];
}

Header parse_header(const std::string& bytes, uint64_t file_size, const std::string& path) {
  Header h;
  h.path = path;
  h.file_size = file_size;
  const uint64_t header_len = header_length(bytes, file_size, path);
  if (bytes.size() < 8 + header_len)
    fail(path, "", "cannot read the " + std::to_string(header_len) + "-byte header");
  h.data_start = 8 + header_len;
  const uint64_t data_size = file_size - h.data_start;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + static_cast<long>(8 + header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "", "header is not a JSON object");

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, name, "must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__." + m.key(), "must be a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(path, name, "entry must be an object");
    TensorInfo info;
    info.name = name;
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(path, name, "missing string 'dtype'");
    info.dtype = v["dtype"].get<std::string>();
    const size_t esize = dtype_size(info.dtype);
    if (esize == 0) fail(path, name, "unsupported safetensors dtype '" + info.dtype + "'");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(path, name, "missing array 'shape'");
    uint64_t bytes_needed = esize;
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(path, name, "shape entries must be non-negative integers");
      info.shape.push_back(d.get<int64_t>());
      overflow |= __builtin_mul_overflow(bytes_needed, static_cast<uint64_t>(d.get<int64_t>()),
                                         &bytes_needed);
    }
    if (overflow) fail(path, name, "shape " + shape_string(info.shape) + " is too large");
    const auto& off = v.contains("data_offsets") ? v["data_offsets"] : nlohmann::json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail(path, name, "'data_offsets' must be [begin, end] (non-negative integers)");
    info.begin = off[0].get<uint64_t>();
    info.end = off[1].get<uint64_t>();
    if (info.begin > info.end || info.end > data_size)
      fail(path, name, "data_offsets [" + std::to_string(info.begin) + ", " +
                           std::to_string(info.end) + "] outside the data area of " +
                           std::to_string(data_size) + " bytes");
    if (info.end - info.begin != bytes_needed)
      fail(path, name, "holds " + std::to_string(info.end - info.begin) + " bytes but " +
                           info.dtype + " " + shape_string(info.shape) + " needs " +
                           std::to_string(bytes_needed));
    h.index[name] = h.tensors.size();
    h.tensors.push_back(std::move(info));
  }
  // No two tensors may share bytes.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& i : h.tensors) by_offset.push_back(&i);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  uint64_t reach = 0;  // the furthest end so far (a long tensor may cover several later ones)
  const TensorInfo* reacher = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->begin == t->end) continue;  // empty tensors occupy no bytes
    if (reacher && t->begin < reach)
      fail(path, t->name, "overlaps tensor '" + reacher->name + "'");
    reach = t->end;
    reacher = t;
  }
  return h;
}

Header read_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", std::string("cannot open for reading: ") + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::string bytes(std::min<uint64_t>(file_size, 8), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const uint64_t header_len = header_length(bytes, file_size, path);
  bytes.resize(8 + header_len);
  if (!in.read(bytes.data() + 8, static_cast<std::streamsize>(header_len)))
    fail(path, "", "cannot read the " + std::to_string(header_len) + "-byte header");
  return parse_header(bytes, file_size, path);
}

}  // namespace audit::safetensors
