#pragma once
// numpy's legacy global generator (np.random.seed / randint / permutation / shuffle, the
// RandomState API), draw for draw, so that a builder seeded like the reference's makes the same
// choices: the ARC builder (dataset/build_arc_dataset.py) calls np.random.seed(42) and then
// shuffles tasks, draws augmentations and translations from that one stream; its puzzle ids and
// every array depend on the order of those draws.
//
// Facts used (numpy's RandomState is stream-compatible across versions by its policy; checked
// against numpy 2.x output in tests/data/arc/numpy_random.json):
//   - seed(s), 0 <= s < 2^32: MT19937 initialised by init_genrand(s) — the same state as
//     std::mt19937(s), and the same tempered 32-bit outputs.
//   - randint(low, high) (int64): rng = high - 1 - low; rng == 0 returns low without a draw;
//     otherwise a mask of rng's bit length, 32-bit draws (rng < 2^32) or 64-bit draws
//     (hi << 32 | lo, two outputs) masked and rejected while > rng.
//   - shuffle(x) (1-d array or list) and permutation(array) = Fisher-Yates from the end: for
//     i = n-1 .. 1, j = random_interval(i), swap x[i], x[j]; random_interval draws as randint's
//     masked rejection over [0, i].
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <utility>

#include "trm/core/error.hpp"

namespace trm::data {

class NumpyLegacyRandom {
 public:
  explicit NumpyLegacyRandom(std::uint32_t seed) : mt_(seed) {}

  std::uint32_t next_uint32() { return std::uint32_t(mt_()); }
  std::uint64_t next_uint64() {
    const std::uint64_t hi = next_uint32();
    return (hi << 32) | next_uint32();
  }

  // A value in [0, max], as numpy's random_interval (masked rejection).
  std::uint64_t interval(std::uint64_t max) {
    if (max == 0) return 0;
    std::uint64_t mask = max;
    for (int s = 1; s < 64; s <<= 1) mask |= mask >> s;
    std::uint64_t v;
    if (max <= 0xffffffffull) {
      do v = next_uint32() & mask; while (v > max);
    } else {
      do v = next_uint64() & mask; while (v > max);
    }
    return v;
  }

  // np.random.randint(low, high): a value in [low, high).
  std::int64_t randint(std::int64_t low, std::int64_t high) {
    if (high <= low)
      throw ValueError("NumpyLegacyRandom::randint: expected low < high, found [" + std::to_string(low) + ", " +
                       std::to_string(high) + ")");
    const std::uint64_t rng = std::uint64_t(high) - std::uint64_t(low) - 1;
    if (rng == 0) return low;
    if (rng == 0xffffffffull) return low + std::int64_t(next_uint32());
    return low + std::int64_t(interval(rng));
  }

  // np.random.shuffle(x) for a 1-d array or a list.
  template <class T>
  void shuffle(std::span<T> x) {
    for (std::size_t i = x.size(); i-- > 1;) {
      const std::size_t j = std::size_t(interval(i));
      using std::swap;
      swap(x[i], x[j]);
    }
  }

 private:
  std::mt19937 mt_;
};

}  // namespace trm::data
