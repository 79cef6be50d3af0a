#pragma once
// A repetition count fixed at compile time or given at run time, in the manner of one extent of
// std::mdspan's extents: Count<6> is the constant 6 and stores nothing, Count<dynamic> stores an
// int. Schedules (n, T, HRM's cycles) and halting policies (N_sup) hold their counts this way, so
// that TrmRecursion<6, 3> costs nothing at run time while TrmRecursion<>{n, T} takes n and T from
// a command line, and both run the same code.
#include <string>

#include "error.hpp"
#include "extents.hpp"

namespace trm {

// Slot: distinguishes the counts of one owner, so that several static ones (all empty types)
// share no address and the owner stays empty.
template <index_t N, int Slot = 0>
class Count {
 public:
  static_assert(N == dynamic || N >= 1, "a static count is >= 1 (or trm::dynamic)");
  static constexpr bool is_static = true;
  constexpr Count() = default;
  // Checked: a static count accepts only its own value (so that generic code may always pass one).
  constexpr Count(index_t v, const char* what) {
    if (v != N)
      throw ValueError(std::string(what) + ": this count is fixed at " + std::to_string(N) + " by the type, found " +
                       std::to_string(v));
  }
  constexpr int value() const { return int(N); }
};

template <int Slot>
class Count<dynamic, Slot> {
 public:
  static constexpr bool is_static = false;
  // Unset (0): an object whose count was never given. Owners validate before use (set()).
  constexpr Count() = default;
  constexpr Count(index_t v, const char* what) {
    if (v < 1 || v > 1'000'000)
      throw ValueError(std::string(what) + ": expected a count in [1, 1000000], found " + std::to_string(v));
    v_ = int(v);
  }
  constexpr int value() const { return v_; }

 private:
  int v_ = 0;
};

}  // namespace trm
