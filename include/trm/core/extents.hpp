#pragma once
// Extents with a mix of compile-time and run-time sizes, in the manner of std::mdspan's extents:
// Extents<dynamic, 81, 512> is "any batch of 81-cell Sudoku sequences of width 512". A static
// extent costs nothing at run time and lets layers check their sizes in the type.
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"

namespace trm {

inline constexpr index_t dynamic = -1;

template <index_t... E>
class Extents {
 public:
  static constexpr std::size_t rank = sizeof...(E);
  static constexpr std::array<index_t, rank> static_extents{E...};
  static constexpr std::size_t rank_dynamic = ((E == dynamic ? 1 : 0) + ... + 0);
  static_assert(((E == dynamic || E >= 0) && ...), "an extent is a size >= 0 or trm::dynamic");

  constexpr Extents() {
    for (std::size_t i = 0; i < rank; ++i) dims_[i] = static_extents[i] == dynamic ? 0 : static_extents[i];
  }
  // All extents, static ones included (they must agree): Extents<dynamic, 81>{4, 81}.
  template <class... I>
    requires(sizeof...(I) == rank && rank > 0 && (std::convertible_to<I, index_t> && ...))
  constexpr explicit Extents(I... dims) : Extents(std::array<index_t, rank>{static_cast<index_t>(dims)...}) {}

  constexpr explicit Extents(const std::array<index_t, rank>& dims) {
    for (std::size_t i = 0; i < rank; ++i) {
      if (dims[i] < 0 || (static_extents[i] != dynamic && dims[i] != static_extents[i]))
        throw_shape_mismatch("extents", static_extents, dims);
      dims_[i] = dims[i];
    }
  }
  // Conversion between extents of the same rank, checked when a static size is involved.
  template <index_t... F>
    requires(sizeof...(F) == rank)
  constexpr Extents(const Extents<F...>& other) : Extents(other.dims()) {}

  static constexpr index_t static_extent(std::size_t i) { return static_extents[i]; }
  constexpr index_t extent(std::size_t i) const { return dims_[i]; }
  constexpr index_t operator[](std::size_t i) const { return dims_[i]; }
  constexpr const std::array<index_t, rank>& dims() const { return dims_; }
  constexpr index_t size() const {
    index_t n = 1;
    for (auto d : dims_) n *= d;
    return n;
  }
  friend constexpr bool operator==(const Extents& a, const Extents& b) { return a.dims_ == b.dims_; }

 private:
  std::array<index_t, rank> dims_{};
};

namespace detail {
template <std::size_t R, class Seq = std::make_index_sequence<R>>
struct dynamic_extents_impl;
template <std::size_t R, std::size_t... I>
struct dynamic_extents_impl<R, std::index_sequence<I...>> {
  using type = Extents<((void)I, dynamic)...>;
};
}  // namespace detail

// Extents<dynamic, ..., dynamic> of rank R.
template <std::size_t R>
using DynExtents = typename detail::dynamic_extents_impl<R>::type;

template <class T>
inline constexpr bool is_extents_v = false;
template <index_t... E>
inline constexpr bool is_extents_v<Extents<E...>> = true;

}  // namespace trm
