#pragma once
// The 8 dihedral transforms of the reference (`dihedral_transform` in dataset/common.py), with
// numpy's semantics on a rows x cols array a (out is the transformed array):
//   0 identity                  out[i][j] = a[i][j]
//   1 np.rot90(a, 1)            out[i][j] = a[j][C-1-i]        (counter-clockwise; shape C x R)
//   2 np.rot90(a, 2)            out[i][j] = a[R-1-i][C-1-j]
//   3 np.rot90(a, 3)            out[i][j] = a[R-1-j][i]        (clockwise; shape C x R)
//   4 np.fliplr(a)              out[i][j] = a[i][C-1-j]
//   5 np.flipud(a)              out[i][j] = a[R-1-i][j]
//   6 a.T                       out[i][j] = a[j][i]            (shape C x R)
//   7 np.fliplr(np.rot90(a,1))  out[i][j] = a[R-1-j][C-1-i]    (anti-transpose; shape C x R)
// inverse: dihedral_inverse = {0, 3, 2, 1, 4, 5, 6, 7}.
// Non-square grids are handled as numpy does: transforms 1, 3, 6 and 7 swap the sides (a 5x8
// grid becomes 8x5); dihedral_shape says the result's sides. Used by Maze (square grids) and ARC
// (any rectangle up to 30x30).
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "trm/core/error.hpp"

namespace trm::data {

inline constexpr int num_dihedral = 8;
inline constexpr std::array<int, 8> dihedral_inverse{0, 3, 2, 1, 4, 5, 6, 7};

namespace detail {
inline void check_dihedral_id(int tid) {
  if (tid < 0 || tid >= num_dihedral)
    throw ValueError("dihedral: expected a transform id in 0..7, found " + std::to_string(tid));
}
inline bool dihedral_swaps_sides(int tid) { return tid == 1 || tid == 3 || tid == 6 || tid == 7; }
// The source cell (r, c) of output cell (i, j) for an R x C input.
inline std::pair<int, int> dihedral_source(int tid, int i, int j, int R, int C) {
  switch (tid) {
    case 1: return {j, C - 1 - i};
    case 2: return {R - 1 - i, C - 1 - j};
    case 3: return {R - 1 - j, i};
    case 4: return {i, C - 1 - j};
    case 5: return {R - 1 - i, j};
    case 6: return {j, i};
    case 7: return {R - 1 - j, C - 1 - i};
    default: return {i, j};
  }
}
}  // namespace detail

// Sides (rows, cols) of transform tid applied to a rows x cols grid.
inline std::pair<int, int> dihedral_shape(int rows, int cols, int tid) {
  detail::check_dihedral_id(tid);
  return detail::dihedral_swaps_sides(tid) ? std::pair{cols, rows} : std::pair{rows, cols};
}

// Transform tid of a row-major rows x cols grid of any element type (tokens, cells, colours).
template <class T>
std::vector<T> dihedral(std::span<const T> grid, int rows, int cols, int tid) {
  detail::check_dihedral_id(tid);
  if (rows < 0 || cols < 0 || grid.size() != std::size_t(rows) * std::size_t(cols))
    throw ShapeError("dihedral: expected " + std::to_string(rows) + "x" + std::to_string(cols) + " = " +
                     std::to_string(std::size_t(rows) * std::size_t(cols)) + " values, found " + std::to_string(grid.size()));
  const auto [R2, C2] = dihedral_shape(rows, cols, tid);
  std::vector<T> out(grid.size());
  for (int i = 0; i < R2; ++i)
    for (int j = 0; j < C2; ++j) {
      const auto [r, c] = detail::dihedral_source(tid, i, j, rows, cols);
      out[std::size_t(i) * std::size_t(C2) + std::size_t(j)] = grid[std::size_t(r) * std::size_t(cols) + std::size_t(c)];
    }
  return out;
}
// rows x cols are the sides of the transformed grid.
template <class T>
std::vector<T> inverse_dihedral(std::span<const T> grid, int rows, int cols, int tid) {
  detail::check_dihedral_id(tid);
  return dihedral(grid, rows, cols, dihedral_inverse[std::size_t(tid)]);
}
template <class T>
std::vector<T> dihedral(const std::vector<T>& grid, int rows, int cols, int tid) {
  return dihedral(std::span<const T>(grid), rows, cols, tid);
}
template <class T>
std::vector<T> inverse_dihedral(const std::vector<T>& grid, int rows, int cols, int tid) {
  return inverse_dihedral(std::span<const T>(grid), rows, cols, tid);
}

}  // namespace trm::data
