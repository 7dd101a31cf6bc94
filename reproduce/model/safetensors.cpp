// safetensors reader and writer with LibTorch (format in hf_checkpoint/safetensors_header.h).
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

[[noreturn]] void fail(const std::string& path, const std::string& key, const std::string& what) {
  throw InputError(path, 0, 0, key, what);
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

File::File(const std::string& path) : header_(read_header(path)) {
  for (const auto& i : header_.tensors) {
    try {
      to_scalar_type(i.dtype);
    } catch (const std::invalid_argument& e) {
      throw InputError(path, 0, 0, i.name, e.what());
    }
  }
}

torch::Tensor File::read(const std::string& name) const {
  const TensorInfo& i = info(name);
  auto t = torch::empty(i.shape, torch::TensorOptions().dtype(to_scalar_type(i.dtype)));
  const uint64_t n = i.end - i.begin;
  if (n == 0) return t;
  std::ifstream in(path(), std::ios::binary);
  if (!in) fail(path(), name, std::string("cannot reopen for reading: ") + std::strerror(errno));
  in.seekg(static_cast<std::streamoff>(header_.data_start + i.begin));
  if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(n)))
    fail(path(), name, "short read of " + std::to_string(n) + " bytes (file truncated?)");
  return t;
}

std::map<std::string, torch::Tensor> File::read_all() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& i : header_.tensors) out[i.name] = read(i.name);
  return out;
}

std::map<std::string, torch::Tensor> load(const std::string& path) { return File(path).read_all(); }

void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  save_ordered(path,
               std::vector<std::pair<std::string, torch::Tensor>>(tensors.begin(), tensors.end()),
               metadata);
}

void save_ordered(const std::string& path,
                  const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
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
