#pragma once
// Comparison helpers of the parity tests (tests/test_{trm,hrm}_parity.cpp): tensor differences
// relative to the reference's scale, and the elementwise comparison of tensors that an optimiser
// moved over a trajectory (tolerances.hpp, "Final state after the trajectory", says why those
// need it).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <sstream>
#include <string>

namespace trm::test {

template <class T>
double max_abs(std::span<const T> v) {
  double m = 0;
  for (auto x : v) m = std::max(m, std::abs(double(x)));
  return m;
}

// max |a - b| / max |b| (max |a - b| where b is all zero)
template <class A, class B>
double rel_diff(std::span<const A> a, std::span<const B> b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  const double s = max_abs(b);
  return s > 0 ? m / s : m;
}

// The spacing of floats at |x| (one unit in the last place).
inline double float_ulp(float x) {
  const float a = std::abs(x);
  return double(std::nextafter(a, std::numeric_limits<float>::infinity())) - double(a);
}

// An element of a trajectory's final tensor has "moved" away from the reference when
// |ours - ref| > max(abs, ulps * ulp(ref)).
struct MoveThreshold {
  double abs = 0;
  double ulps = 0;
  double at(float ref) const { return std::max(abs, ulps * float_ulp(ref)); }
};

struct MovedDiff {
  std::size_t size = 0;
  std::size_t moved = 0;           // elements beyond the threshold
  std::size_t decades[4] = {};     // elements beyond 0.1x, 1x, 10x, 100x the threshold
  double max_abs = 0;              // max |ours - ref|
  double rel = 0;                  // max |ours - ref| / max |ref|
  double fraction() const { return size ? double(moved) / double(size) : 0.0; }
  // `unit`: a scale to express max |d| in (the optimiser's learning rate), named `unit_name`.
  std::string describe(double unit, const char* unit_name) const {
    std::ostringstream o;
    o << "max |d| " << max_abs << " = " << max_abs / unit << " " << unit_name << " (rel " << rel << "); " << moved << " of "
      << size << " elements moved (" << fraction() << "); beyond 0.1/1/10/100x the threshold: " << decades[0] << "/"
      << decades[1] << "/" << decades[2] << "/" << decades[3];
    return o.str();
  }
};

template <class A, class B>
MovedDiff moved_diff(std::span<const A> ours, std::span<const B> ref, const MoveThreshold& threshold) {
  REQUIRE(ours.size() == ref.size());
  MovedDiff d;
  d.size = ours.size();
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const double e = std::abs(double(ours[i]) - double(ref[i])), t = threshold.at(float(ref[i]));
    d.max_abs = std::max(d.max_abs, e);
    d.moved += e > t;
    for (int j = 0; j < 4; ++j) d.decades[j] += e > t * std::pow(10.0, j - 1);
  }
  const double s = max_abs(ref);
  d.rel = s > 0 ? d.max_abs / s : d.max_abs;
  return d;
}

}  // namespace trm::test
