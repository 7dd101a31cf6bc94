// safetensors reader and writer (format described in safetensors.h).
#include "reproduce/model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

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

void put_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool little_endian_host() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

}  // namespace

torch::ScalarType to_scalar_type(const std::string& d) {
  if (d == "F32") return torch::kFloat;
  if (d == "F16") return torch::kHalf;
  if (d == "BF16") return torch::kBFloat16;
  if (d == "F64") return torch::kDouble;
  if (d == "I64") return torch::kLong;
  if (d == "I32") return torch::kInt;
  if (d == "I16") return torch::kShort;
  if (d == "I8") return torch::kChar;
  if (d == "U8") return torch::kByte;
  if (d == "BOOL") return torch::kBool;
  throw std::invalid_argument("unsupported safetensors dtype '" + d + "'");
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "F32";
    case torch::kHalf: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kDouble: return "F64";
    case torch::kLong: return "I64";
    case torch::kInt: return "I32";
    case torch::kShort: return "I16";
    case torch::kChar: return "I8";
    case torch::kByte: return "U8";
    case torch::kBool: return "BOOL";
    default: throw std::invalid_argument(std::string("no safetensors dtype for ") +
                                         c10::toString(t));
  }
}

File::File(const std::string& path) : path_(path) {
  if (!little_endian_host()) fail(path, "", "safetensors needs a little-endian host");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", std::string("cannot open for reading: ") + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8)
    fail(path, "", "too short for a safetensors file (" + std::to_string(file_size) +
                       " bytes; the first 8 bytes hold the header length)");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  const uint64_t header_len = read_le64(len_bytes);
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8)
    fail(path, "", "header length " + std::to_string(header_len) + " exceeds the file (" +
                       std::to_string(file_size) + " bytes): truncated or not safetensors");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len)))
    fail(path, "", "cannot read the " + std::to_string(header_len) + "-byte header");
  data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - data_start_;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::parse_error& e) {
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
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(path, name, "entry must be an object");
    TensorInfo info;
    info.name = name;
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(path, name, "missing string 'dtype'");
    info.dtype = v["dtype"].get<std::string>();
    torch::ScalarType st;
    try {
      st = to_scalar_type(info.dtype);
    } catch (const std::invalid_argument& e) {
      fail(path, name, e.what());
    }
    if (!v.contains("shape") || !v["shape"].is_array()) fail(path, name, "missing array 'shape'");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(path, name, "shape entries must be non-negative integers");
      info.shape.push_back(d.get<int64_t>());
      numel *= static_cast<uint64_t>(d.get<int64_t>());
    }
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
    const uint64_t expect = numel * c10::elementSize(st);
    if (info.end - info.begin != expect)
      fail(path, name, "holds " + std::to_string(info.end - info.begin) + " bytes but " +
                           info.dtype + " " + c10::str(c10::IntArrayRef(info.shape)) + " needs " +
                           std::to_string(expect));
    index_[name] = infos_.size();
    infos_.push_back(std::move(info));
  }
  // No two tensors may share bytes.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& i : infos_) by_offset.push_back(&i);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end && by_offset[i]->begin != by_offset[i]->end)
      fail(path, by_offset[i]->name, "overlaps tensor '" + by_offset[i - 1]->name + "'");
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(path_, name, "no such tensor in the file");
  return infos_[it->second];
}

torch::Tensor File::read(const std::string& name) const {
  const TensorInfo& i = info(name);
  auto t = torch::empty(i.shape, torch::TensorOptions().dtype(to_scalar_type(i.dtype)));
  const uint64_t n = i.end - i.begin;
  if (n == 0) return t;
  std::ifstream in(path_, std::ios::binary);
  if (!in) fail(path_, name, std::string("cannot reopen for reading: ") + std::strerror(errno));
  in.seekg(static_cast<std::streamoff>(data_start_ + i.begin));
  if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(n)))
    fail(path_, name, "short read of " + std::to_string(n) + " bytes (file truncated?)");
  return t;
}

std::map<std::string, torch::Tensor> File::read_all() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& i : infos_) out[i.name] = read(i.name);
  return out;
}

std::map<std::string, torch::Tensor> load(const std::string& path) { return File(path).read_all(); }

void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  if (!little_endian_host()) throw std::runtime_error("safetensors needs a little-endian host");
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    blobs.push_back(c);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // align the data area to 8 bytes
  std::string prefix;
  put_le64(prefix, h.size());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw std::runtime_error("cannot open " + tmp + " for writing: " + std::strerror(errno));
    out.write(prefix.data(), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& c : blobs)
      out.write(static_cast<const char*>(c.data_ptr()),
                static_cast<std::streamsize>(c.numel() * c.element_size()));
    out.flush();
    if (!out) throw std::runtime_error("write failed on " + tmp + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
}

}  // namespace audit::safetensors
