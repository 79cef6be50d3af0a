#pragma once
// The reference's ARC token canvas (np_grid_to_seq_translational_augment and the evaluator's
// _crop), for a canvas of Side x Side cells (the reference's is 30: seq_len 900):
//   PAD 0, EOS 1, colour c -> c + 2 (2..11); vocab 12.
// A grid goes at offset (r0, c0); EOS fills the row just below it (its columns) and the column
// just right of it (its rows) where they are inside the canvas; the rest is PAD. Labels are the
// output grid's tokens, PAD unsupervised (ignore_label_id 0).
#include <cstdint>
#include <span>
#include <string>

#include "trm/core/error.hpp"
#include "trm/data/arc/grid.hpp"

namespace trm::data::arc {

inline constexpr std::uint8_t pad_token = 0;
inline constexpr std::uint8_t eos_token = 1;
inline constexpr std::uint8_t colour_token_offset = 2;
inline constexpr int vocab_size = 12;

inline bool fits_canvas(const Grid& g, int side) { return g.rows <= side && g.cols <= side; }

// g at (r0, c0) on a side x side canvas `out` (side * side tokens, overwritten).
inline void encode_into(const Grid& g, int side, int r0, int c0, std::span<std::uint8_t> out) {
  if (out.size() != std::size_t(side) * std::size_t(side))
    throw ShapeError("arc::encode: expected a canvas of " + std::to_string(side * side) + " tokens, found " + std::to_string(out.size()));
  if (r0 < 0 || c0 < 0 || r0 + g.rows > side || c0 + g.cols > side)
    throw ValueError("arc::encode: a " + std::to_string(g.rows) + "x" + std::to_string(g.cols) + " grid at (" + std::to_string(r0) +
                     ", " + std::to_string(c0) + ") does not fit a " + std::to_string(side) + "x" + std::to_string(side) + " canvas");
  std::fill(out.begin(), out.end(), pad_token);
  for (int r = 0; r < g.rows; ++r)
    for (int c = 0; c < g.cols; ++c)
      out[std::size_t(r0 + r) * std::size_t(side) + std::size_t(c0 + c)] = std::uint8_t(g.at(r, c) + colour_token_offset);
  const int eos_r = r0 + g.rows, eos_c = c0 + g.cols;
  if (eos_r < side)
    for (int c = c0; c < eos_c; ++c) out[std::size_t(eos_r) * std::size_t(side) + std::size_t(c)] = eos_token;
  if (eos_c < side)
    for (int r = r0; r < eos_r; ++r) out[std::size_t(r) * std::size_t(side) + std::size_t(eos_c)] = eos_token;
}

// The evaluator's crop of a side x side canvas of tokens (any values): the largest top-left
// rectangle of colour tokens, scanning rows from the top (a row limits the width to the colour
// run at its start; the first maximal area wins), mapped back to colours. An empty crop (no
// colour at the top-left corner) is a 0x0 grid.
template <class Token>
Grid crop(std::span<const Token> tokens, int side) {
  if (tokens.size() != std::size_t(side) * std::size_t(side))
    throw ShapeError("arc::crop: expected " + std::to_string(side * side) + " tokens, found " + std::to_string(tokens.size()));
  auto is_colour = [](Token t) { return t >= Token(colour_token_offset) && t < Token(vocab_size); };
  int best_area = 0, best_r = 0, best_c = 0, width = side;
  for (int r = 1; r <= side; ++r) {
    for (int c = 1; c <= width; ++c)
      if (!is_colour(tokens[std::size_t(r - 1) * std::size_t(side) + std::size_t(c - 1)])) {
        width = c - 1;
        break;
      }
    if (r * width > best_area) {
      best_area = r * width;
      best_r = r;
      best_c = width;
    }
  }
  Grid g(best_r, best_c);
  for (int r = 0; r < best_r; ++r)
    for (int c = 0; c < best_c; ++c)
      g.at(r, c) = std::uint8_t(int(tokens[std::size_t(r) * std::size_t(side) + std::size_t(c)]) - colour_token_offset);
  return g;
}

}  // namespace trm::data::arc
