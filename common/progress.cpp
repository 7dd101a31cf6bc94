// Progress lines with elapsed time and ETA (see progress.h).
#include "common/progress.h"

#include "common/format.h"

#include <cmath>
#include <cstdio>

namespace audit {

Progress::Progress(std::string label, int64_t total, bool quiet, double every_s)
    : label_(std::move(label)), total_(total), quiet_(quiet), every_s_(every_s),
      t0_(std::chrono::steady_clock::now()), last_(t0_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::update(int64_t done, const std::string& detail) {
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  bool last = done >= total_;
  if (!last && printed_any_ && std::chrono::duration<double>(now - last_).count() < every_s_) return;
  last_ = now;
  printed_any_ = true;
  double el = elapsed_s();
  double eta = done > 0 ? el * double(total_ - done) / double(done) : NAN;
  std::fprintf(stderr, "[%s] %lld/%lld %s elapsed %s ETA %s\n", label_.c_str(), (long long)done,
               (long long)total_, detail.c_str(), text::clock(el).c_str(),
               last ? "0:00" : text::clock(eta).c_str());
  std::fflush(stderr);
}

void Progress::finish(const std::string& detail) {
  if (quiet_) return;
  std::fprintf(stderr, "[%s] done in %s %s\n", label_.c_str(), text::clock(elapsed_s()).c_str(),
               detail.c_str());
  std::fflush(stderr);
}

}  // namespace audit
