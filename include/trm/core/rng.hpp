#pragma once
// Seeded random numbers and the reference's truncated-normal ("truncated LeCun normal") init.
// The generator is a counter-free xoshiro256** seeded through splitmix64: fast, good quality,
// identical on every platform for a given seed (std::mt19937 with std distributions is not:
// the distributions are implementation-defined).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "error.hpp"

namespace trm {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& s : state_) s = splitmix64(x);
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), unbiased (Lemire's method with rejection).
  std::uint64_t below(std::uint64_t n) {
    if (n == 0) return 0;
    while (true) {
      std::uint64_t x = next_u64();
      __uint128_t m = static_cast<__uint128_t>(x) * n;
      std::uint64_t lo = static_cast<std::uint64_t>(m);
      if (lo >= n || lo >= (-n) % n) return static_cast<std::uint64_t>(m >> 64);
    }
  }
  bool bernoulli(double p) { return uniform() < p; }
  double normal() {  // Box-Muller; one value per call keeps the stream simple to reason about
    double u1 = 1.0 - uniform();
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  // The whole state, so that a training run can be saved and resumed bit for bit. An all-zero
  // state is xoshiro's fixed point: next_u64() returns 0 forever and below(n) then loops forever
  // for any n that is not a power of two (its rejection test never passes). Saved states are
  // untrusted input (a sampler's position, a generated source's), so it is refused here, where
  // every restore passes, with a ValueError (no seed leads to it: reseed() never produces it).
  std::array<std::uint64_t, 4> state() const { return state_; }
  void set_state(const std::array<std::uint64_t, 4>& s) {
    if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0)
      throw ValueError("Rng::set_state: expected a live xoshiro256** state, found all zeros (the generator would be stuck at 0)");
    state_ = s;
  }

  template <class It>
  void shuffle(It first, It last) {
    auto n = last - first;
    for (decltype(n) i = n - 1; i > 0; --i) std::swap(first[i], first[static_cast<decltype(n)>(below(i + 1))]);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::array<std::uint64_t, 4> state_{};
};

// Inverse error function, named so as not to clash with CUDA's global erfinv under `using namespace trm` (Giles' single-precision-style approximation refined by two Newton steps
// in double, accurate to ~1e-15 on (-1, 1)).
inline double inverse_erf(double x) {
  if (x <= -1.0) return -std::numeric_limits<double>::infinity();
  if (x >= 1.0) return std::numeric_limits<double>::infinity();
  double w = -std::log((1.0 - x) * (1.0 + x));
  double p;
  if (w < 5.0) {
    w -= 2.5;
    p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
  } else {
    w = std::sqrt(w) - 3.0;
    p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
  }
  double y = p * x;
  // Newton refinement on erf(y) = x: y -= (erf(y) - x) / (2/sqrt(pi) * exp(-y^2)).
  for (int i = 0; i < 2; ++i) {
    double err = std::erf(y) - x;
    y -= err / (1.1283791670955126 * std::exp(-y * y));
  }
  return y;
}

// The reference's truncated normal (SPEC §1.9): a standard normal truncated to [-2, 2], rescaled
// so that the actual standard deviation equals `std`; values clipped to +-2 * the compensated std.
template <class T>
void trunc_normal_init(std::span<T> out, double std, Rng& rng) {
  if (std == 0.0) {
    for (auto& v : out) v = T(0);
    return;
  }
  constexpr double lower = -2.0, upper = 2.0;
  const double sqrt2 = 1.4142135623730951;
  const double a = std::erf(lower / sqrt2), b = std::erf(upper / sqrt2);
  // Variance of the standard normal truncated to [-2, 2]: 1 - 2*2*phi(2)/(Phi(2)-Phi(-2)).
  const double z = (b - a) / 2.0;
  const double pdf_u = std::exp(-0.5 * upper * upper) / std::sqrt(2.0 * 3.141592653589793);
  const double pdf_l = std::exp(-0.5 * lower * lower) / std::sqrt(2.0 * 3.141592653589793);
  const double trunc_std = std::sqrt(1.0 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z) * ((pdf_u - pdf_l) / z));
  const double comp_std = std / trunc_std;
  for (auto& v : out) {
    double u = rng.uniform(a, b);
    double x = sqrt2 * inverse_erf(u) * comp_std;
    x = std::clamp(x, lower * comp_std, upper * comp_std);
    v = static_cast<T>(x);
  }
}

}  // namespace trm
