#pragma once
// The reference's validity-preserving Sudoku augmentation (SPEC §6.2, `shuffle_sudoku` in
// build_sudoku_dataset.py), generalised to any box shape:
//   - digit relabelling: a random permutation of 1..N, blank (0) fixed;
//   - transpose with probability 1/2, applied first, only when BoxRows == BoxCols;
//   - row order: a random order of the bands (groups of BoxRows rows), each band with its rows
//     permuted; column order likewise with stacks (groups of BoxCols columns);
//   - new cell (r, c) takes the old cell (row_perm[r], col_perm[c]) of the (transposed) grid.
// The same transform is applied to puzzle and solution, so a valid puzzle stays valid with the
// same (unique) solution. Random draws come from trm::Rng in the reference's order (digit
// permutation, transpose flag, band order, rows per band, stack order, columns per stack), so a
// seed gives the same augmentation on every platform (the values differ from numpy's stream).
#include <array>
#include <cstdint>
#include <numeric>

#include "trm/core/rng.hpp"
#include "trm/data/sudoku/grid.hpp"

namespace trm::data::sudoku {

template <SudokuShapeType S>
struct Transform {
  std::array<std::uint8_t, S::n + 1> digit_map{};  // new value of old value v; digit_map[0] = 0
  bool transpose = false;
  std::array<std::uint8_t, S::n> row_perm{};  // new row r takes old row row_perm[r]
  std::array<std::uint8_t, S::n> col_perm{};  // new col c takes old col col_perm[c]

  static Transform identity() {
    Transform t;
    std::iota(t.digit_map.begin(), t.digit_map.end(), std::uint8_t{0});
    std::iota(t.row_perm.begin(), t.row_perm.end(), std::uint8_t{0});
    std::iota(t.col_perm.begin(), t.col_perm.end(), std::uint8_t{0});
    return t;
  }
};

template <SudokuShapeType S>
Transform<S> random_transform(Rng& rng) {
  Transform<S> t;
  std::array<std::uint8_t, S::n> digits{};
  std::iota(digits.begin(), digits.end(), std::uint8_t{1});
  rng.shuffle(digits.begin(), digits.end());
  t.digit_map[0] = 0;
  for (int d = 1; d <= S::n; ++d) t.digit_map[static_cast<std::size_t>(d)] = digits[static_cast<std::size_t>(d - 1)];

  // Transposing turns BoxRows x BoxCols boxes into BoxCols x BoxRows boxes, which is a different
  // Sudoku shape when they differ (a 6x6 grid with 2x3 boxes would get 3x2 boxes and stop being
  // valid), so it is only drawn for square boxes. No random draw is spent otherwise.
  if constexpr (S::square_boxes) t.transpose = rng.bernoulli(0.5);

  auto groups = [&rng](std::array<std::uint8_t, S::n>& perm, int num_groups, int group_size) {
    std::array<std::uint8_t, S::n> order{};
    std::iota(order.begin(), order.begin() + num_groups, std::uint8_t{0});
    rng.shuffle(order.begin(), order.begin() + num_groups);
    int k = 0;
    for (int g = 0; g < num_groups; ++g) {
      std::array<std::uint8_t, S::n> inner{};
      std::iota(inner.begin(), inner.begin() + group_size, std::uint8_t{0});
      rng.shuffle(inner.begin(), inner.begin() + group_size);
      for (int j = 0; j < group_size; ++j) {
        perm[static_cast<std::size_t>(k++)] =
            static_cast<std::uint8_t>(order[static_cast<std::size_t>(g)] * group_size + inner[static_cast<std::size_t>(j)]);
      }
    }
  };
  groups(t.row_perm, S::bands, S::box_rows);
  groups(t.col_perm, S::stacks, S::box_cols);
  return t;
}

// Applies `t` to one grid. Values outside 0..N throw trm::ValueError.
template <SudokuShapeType S>
Grid<S> apply_transform(const Transform<S>& t, const Grid<S>& g) {
  check_values(g, "sudoku augment");
  Grid<S> out{};
  for (int r = 0; r < S::n; ++r) {
    for (int c = 0; c < S::n; ++c) {
      const int sr = t.row_perm[static_cast<std::size_t>(r)], sc = t.col_perm[static_cast<std::size_t>(c)];
      const std::uint8_t v = t.transpose ? g.at(sc, sr) : g.at(sr, sc);
      out.at(r, c) = t.digit_map[v];
    }
  }
  return out;
}

template <SudokuShapeType S>
Example<S> apply_transform(const Transform<S>& t, const Example<S>& ex) {
  return {apply_transform(t, ex.puzzle), apply_transform(t, ex.solution)};
}

// The exact inverse: apply_transform(inverse(t), apply_transform(t, g)) == g for every grid g.
// Undoing "transpose, then permute rows and columns, then relabel digits" is "relabel back, permute
// back, then transpose", and that is again a Transform: with a transpose, the inverse's row order
// is the inverse of t's column order and vice versa.
template <SudokuShapeType S>
Transform<S> inverse(const Transform<S>& t) {
  auto invert = [](const std::array<std::uint8_t, S::n>& p) {
    std::array<std::uint8_t, S::n> q{};
    for (int i = 0; i < S::n; ++i) q[p[static_cast<std::size_t>(i)]] = static_cast<std::uint8_t>(i);
    return q;
  };
  Transform<S> u;
  for (int v = 0; v <= S::n; ++v) u.digit_map[t.digit_map[static_cast<std::size_t>(v)]] = static_cast<std::uint8_t>(v);
  u.transpose = t.transpose;
  u.row_perm = invert(t.transpose ? t.col_perm : t.row_perm);
  u.col_perm = invert(t.transpose ? t.row_perm : t.col_perm);
  return u;
}

// One random augmentation of a puzzle and its solution (the same transform for both).
template <SudokuShapeType S>
Example<S> augment(const Example<S>& ex, Rng& rng) {
  return apply_transform(random_transform<S>(rng), ex);
}

}  // namespace trm::data::sudoku
