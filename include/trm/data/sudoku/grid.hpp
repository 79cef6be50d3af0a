#pragma once
// Sudoku shapes, grids and validity checks.
//
// A Sudoku of side N = BoxRows * BoxCols has N rows, N columns and N boxes of BoxRows rows by
// BoxCols columns; digits are 1..N and 0 is a blank. Cells are numbered row by row
// (cell = row * N + col); rows, columns, boxes and cells are 0-based everywhere in this module
// (in error messages too); only file line numbers are 1-based.
#include <array>
#include <concepts>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include "trm/core/error.hpp"

namespace trm::data::sudoku {

template <int BoxRows, int BoxCols>
struct SudokuShape {
  static_assert(BoxRows >= 1 && BoxCols >= 1, "SudokuShape: box sides must be positive");
  static_assert(BoxRows * BoxCols >= 2 && BoxRows * BoxCols <= 16,
                "SudokuShape: side N = BoxRows * BoxCols must be in [2, 16] (digit sets are 32-bit masks, "
                "tokens are uint8)");

  static constexpr int box_rows = BoxRows;  // rows per box (= rows per band)
  static constexpr int box_cols = BoxCols;  // columns per box (= columns per stack)
  static constexpr int n = BoxRows * BoxCols;  // side length = number of digits
  static constexpr int cells = n * n;
  static constexpr int bands = n / BoxRows;   // = BoxCols: groups of BoxRows rows
  static constexpr int stacks = n / BoxCols;  // = BoxRows: groups of BoxCols columns
  static constexpr bool square_boxes = BoxRows == BoxCols;
  static constexpr int seq_len = cells;   // token sequence length of the reference encoding
  static constexpr int vocab_size = n + 2;  // pad 0, blank 1, digits 2..N+1

  static constexpr int row(int cell) { return cell / n; }
  static constexpr int col(int cell) { return cell % n; }
  static constexpr int box(int cell) { return (row(cell) / BoxRows) * stacks + col(cell) / BoxCols; }
  static constexpr int cell(int row, int col) { return row * n + col; }

  static std::string name() {
    return "Sudoku " + std::to_string(n) + "x" + std::to_string(n) + " with " + std::to_string(BoxRows) + "x" +
           std::to_string(BoxCols) + " boxes";
  }
};

using Sudoku4 = SudokuShape<2, 2>;
using Sudoku6 = SudokuShape<2, 3>;  // boxes of 2 rows x 3 columns
using Sudoku9 = SudokuShape<3, 3>;

template <class S>
concept SudokuShapeType = requires {
  { S::box_rows } -> std::convertible_to<int>;
  { S::box_cols } -> std::convertible_to<int>;
} && std::is_same_v<S, SudokuShape<S::box_rows, S::box_cols>>;

// A grid is an std::array<uint8_t, cells> (0 = blank, 1..N = digit), tagged with its shape so that
// functions taking a Grid<S> deduce S. It converts to its std::array base implicitly.
template <SudokuShapeType S>
struct Grid : std::array<std::uint8_t, S::cells> {
  using shape = S;
  using array_type = std::array<std::uint8_t, S::cells>;

  static Grid from_array(const array_type& a) {
    Grid g;
    static_cast<array_type&>(g) = a;
    return g;
  }
  std::uint8_t& at(int row, int col) { return (*this)[static_cast<std::size_t>(S::cell(row, col))]; }
  std::uint8_t at(int row, int col) const { return (*this)[static_cast<std::size_t>(S::cell(row, col))]; }

  friend bool operator==(const Grid& a, const Grid& b) {
    return static_cast<const array_type&>(a) == static_cast<const array_type&>(b);
  }
};

// A puzzle with its (unique) solution.
template <SudokuShapeType S>
struct Example {
  Grid<S> puzzle;
  Grid<S> solution;
  friend bool operator==(const Example&, const Example&) = default;
};

namespace detail {

inline std::string cell_name(int cell, int n) {
  return "cell " + std::to_string(cell) + " (row " + std::to_string(cell / n) + ", col " + std::to_string(cell % n) +
         ")";
}

template <class S>
std::string cell_name(int cell) {
  return cell_name(cell, S::n);
}

}  // namespace detail

// Throws trm::ValueError naming the first cell whose value is not in 0..N.
template <SudokuShapeType S>
void check_values(const Grid<S>& g, std::string_view what = "grid") {
  for (int i = 0; i < S::cells; ++i) {
    if (g[static_cast<std::size_t>(i)] > S::n) {
      throw ValueError(std::string(what) + ": " + detail::cell_name<S>(i) + " has value " +
                       std::to_string(int(g[static_cast<std::size_t>(i)])) + ", expected 0 (blank) or a digit 1.." +
                       std::to_string(S::n));
    }
  }
}

// The first rule violation of a (possibly partial) grid, in words, or nullopt when every row,
// column and box holds each digit at most once and all values are in 0..N.
template <SudokuShapeType S>
std::optional<std::string> find_conflict(const Grid<S>& g) {
  for (int i = 0; i < S::cells; ++i) {
    const int v = g[static_cast<std::size_t>(i)];
    if (v > S::n) {
      return detail::cell_name<S>(i) + " has value " + std::to_string(v) + ", expected 0 (blank) or a digit 1.." +
             std::to_string(S::n);
    }
  }
  // first[unit kind][unit][digit] = first cell seen + 1 (0 = none)
  std::array<std::array<std::array<int, S::n + 1>, S::n>, 3> first{};
  static constexpr const char* kinds[3] = {"row", "col", "box"};
  for (int i = 0; i < S::cells; ++i) {
    const int v = g[static_cast<std::size_t>(i)];
    if (v == 0) continue;
    const int units[3] = {S::row(i), S::col(i), S::box(i)};
    for (int k = 0; k < 3; ++k) {
      int& seen = first[static_cast<std::size_t>(k)][static_cast<std::size_t>(units[k])][static_cast<std::size_t>(v)];
      if (seen != 0) {
        return "digit " + std::to_string(v) + " appears twice in " + kinds[k] + " " + std::to_string(units[k]) +
               " (cells " + std::to_string(seen - 1) + " and " + std::to_string(i) + ")";
      }
      seen = i + 1;
    }
  }
  return std::nullopt;
}

// True when no digit repeats in a row, column or box (blanks allowed) and all values are in 0..N.
template <SudokuShapeType S>
bool is_consistent(const Grid<S>& g) {
  return !find_conflict(g).has_value();
}

template <SudokuShapeType S>
int count_blanks(const Grid<S>& g) {
  int n = 0;
  for (auto v : g) n += v == 0;
  return n;
}

// A complete, valid grid: no blank and no conflict.
template <SudokuShapeType S>
bool is_valid_solution(const Grid<S>& g) {
  return count_blanks(g) == 0 && is_consistent(g);
}

// The first cell where `solution` disagrees with a given of `puzzle`, or nullopt.
template <SudokuShapeType S>
std::optional<int> first_changed_given(const Grid<S>& puzzle, const Grid<S>& solution) {
  for (int i = 0; i < S::cells; ++i) {
    const auto p = puzzle[static_cast<std::size_t>(i)];
    if (p != 0 && p != solution[static_cast<std::size_t>(i)]) return i;
  }
  return std::nullopt;
}

template <SudokuShapeType S>
bool keeps_givens(const Grid<S>& puzzle, const Grid<S>& solution) {
  return !first_changed_given(puzzle, solution).has_value();
}

// One character per cell, row by row: '.' for a blank, '1'..'9' then 'A'.. for digits >= 10.
template <SudokuShapeType S>
std::string to_string(const Grid<S>& g) {
  std::string s(S::cells, '.');
  for (int i = 0; i < S::cells; ++i) {
    const int v = g[static_cast<std::size_t>(i)];
    s[static_cast<std::size_t>(i)] = v == 0 ? '.' : v <= 9 ? char('0' + v) : v <= 35 ? char('A' + v - 10) : '?';
  }
  return s;
}

template <SudokuShapeType S>
std::ostream& operator<<(std::ostream& os, const Grid<S>& g) {
  return os << to_string(g);
}

// Inverse of to_string; '0' is also accepted for a blank. Throws trm::ValueError naming the
// position of a bad character or the wrong length.
template <SudokuShapeType S>
Grid<S> parse_grid(std::string_view text) {
  if (text.size() != static_cast<std::size_t>(S::cells)) {
    throw ValueError("sudoku grid: expected " + std::to_string(S::cells) + " characters for " + S::name() +
                     ", found " + std::to_string(text.size()));
  }
  Grid<S> g{};
  for (int i = 0; i < S::cells; ++i) {
    const char c = text[static_cast<std::size_t>(i)];
    int v = -1;
    if (c == '.' || c == '0') v = 0;
    else if (c >= '1' && c <= '9') v = c - '0';
    else if (c >= 'A' && c <= 'Z') v = c - 'A' + 10;
    if (v < 0 || v > S::n) {
      throw ValueError("sudoku grid: " + detail::cell_name<S>(i) + ": expected '.' or a digit 1.." +
                       std::to_string(S::n) + ", found '" + std::string(1, c) + "'");
    }
    g[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
  }
  return g;
}

}  // namespace trm::data::sudoku
