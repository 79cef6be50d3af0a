#pragma once
// The reference token encoding (SPEC §6.2): token = value + 1, so pad 0 (never produced), blank 1,
// digits 1..N -> 2..N+1; vocab_size = N + 2 (11 for 9x9); seq_len = N*N. Labels are the solution's
// tokens (every cell supervised, givens included).
#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "trm/core/error.hpp"
#include "trm/data/sudoku/grid.hpp"

namespace trm::data::sudoku {

inline constexpr std::uint8_t pad_token = 0;
inline constexpr std::uint8_t blank_token = 1;

template <SudokuShapeType S>
using Tokens = std::array<std::uint8_t, S::cells>;

// Writes the tokens of `g` to `out` (size cells). Values outside 0..N throw trm::ValueError naming
// the cell; a wrong `out` size throws trm::ShapeError.
template <SudokuShapeType S>
void encode_into(const Grid<S>& g, std::span<std::uint8_t> out) {
  if (out.size() != static_cast<std::size_t>(S::cells)) {
    throw ShapeError("sudoku encode: expected an output of " + std::to_string(S::cells) + " tokens for " + S::name() +
                     ", found " + std::to_string(out.size()));
  }
  for (int i = 0; i < S::cells; ++i) {
    const int v = g[static_cast<std::size_t>(i)];
    if (v > S::n) {
      throw ValueError("sudoku encode: " + detail::cell_name<S>(i) + " has value " + std::to_string(v) +
                       ", expected 0 (blank) or a digit 1.." + std::to_string(S::n));
    }
    out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v + 1);
  }
}

template <SudokuShapeType S>
Tokens<S> encode(const Grid<S>& g) {
  Tokens<S> t{};
  encode_into(g, std::span<std::uint8_t>(t));
  return t;
}

// Tokens back to a grid. Token 0 (pad) and tokens above N+1 throw trm::ValueError naming the cell
// index and the token; with allow_blank = false (labels) the blank token 1 is rejected too.
// A wrong length throws trm::ShapeError.
template <SudokuShapeType S>
Grid<S> decode(std::span<const std::uint8_t> tokens, bool allow_blank = true) {
  if (tokens.size() != static_cast<std::size_t>(S::cells)) {
    throw ShapeError("sudoku decode: expected " + std::to_string(S::cells) + " tokens for " + S::name() + ", found " +
                     std::to_string(tokens.size()));
  }
  Grid<S> g{};
  const int lo = allow_blank ? blank_token : blank_token + 1;
  for (int i = 0; i < S::cells; ++i) {
    const int t = tokens[static_cast<std::size_t>(i)];
    if (t < lo || t > S::n + 1) {
      throw ValueError("sudoku decode: " + detail::cell_name<S>(i) + " has token " + std::to_string(t) +
                       ", expected " + std::to_string(lo) + ".." + std::to_string(S::n + 1) +
                       (allow_blank ? " (1 = blank, 2.. = digits)" : " (digits; a label has no blank)"));
    }
    g[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(t - 1);
  }
  return g;
}

template <SudokuShapeType S>
Grid<S> decode(const Tokens<S>& tokens, bool allow_blank = true) {
  return decode<S>(std::span<const std::uint8_t>(tokens), allow_blank);
}

}  // namespace trm::data::sudoku
