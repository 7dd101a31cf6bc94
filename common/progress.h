// Progress lines for long stages: "[stage] 120/315 loss 0.41 12.3k tok/s ETA 0:45", at most one
// line every few seconds (and always the last), on stderr so stdout stays machine-readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace audit {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool quiet = false, double every_s = 3.0);
  // done of total finished; detail is appended ("loss 0.41 12.3k tok/s").
  void update(int64_t done, const std::string& detail = "");
  void finish(const std::string& detail = "");
  double elapsed_s() const;

 private:
  std::string label_;
  int64_t total_;
  bool quiet_;
  double every_s_;
  std::chrono::steady_clock::time_point t0_, last_;
  bool printed_any_ = false;
};


}  // namespace audit
