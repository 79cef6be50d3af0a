#pragma once
// ARC as a task of the task layer (trm/data/task.hpp) on a Side x Side canvas: a puzzle is a
// grid, encoded at the top-left corner (canvas.hpp) and decoded by the evaluator's crop. ARC has
// no checker of an answer without its solution, so is_valid_answer only says that the answer is
// a grid (a non-empty crop): exactness against the stored output is what scores.
#include <span>
#include <string>

#include "trm/core/rng.hpp"
#include "trm/data/arc/augment.hpp"
#include "trm/data/arc/canvas.hpp"
#include "trm/data/task.hpp"

namespace trm::data::arc {

template <int Side>
struct CanvasTask {
  static_assert(Side >= 1 && Side <= max_grid_side, "an ARC canvas holds grids of at most 30x30");
  static constexpr int rows = Side, cols = Side;
  static constexpr int vocab_size = arc::vocab_size;
  static constexpr std::uint8_t pad_token = arc::pad_token;
  using puzzle_type = Grid;
  using augmentation_type = Augmentation;

  std::string name() const { return "ARC " + std::to_string(Side) + "x" + std::to_string(Side); }
  TaskTokens<CanvasTask> encode(const Grid& g) const {
    TaskTokens<CanvasTask> t{};
    if (!fits_canvas(g, Side))
      throw ValueError(name() + ": a " + std::to_string(g.rows) + "x" + std::to_string(g.cols) + " grid does not fit the canvas");
    encode_into(g, Side, 0, 0, t);
    return t;
  }
  Grid decode(std::span<const std::uint8_t> tokens) const { return crop(tokens, Side); }
  bool is_valid_answer(const Grid&, const Grid& a) const { return a.rows > 0 && a.cols > 0; }

  Augmentation identity_augmentation() const { return {}; }
  Augmentation random_augmentation(Rng& rng) const {
    Augmentation a;
    a.tid = int(rng.below(8));
    for (int c = num_colours - 1; c >= 2; --c) std::swap(a.colour_map[std::size_t(c)], a.colour_map[std::size_t(1 + rng.below(std::uint64_t(c)))]);
    return a;
  }
  Grid augment(const Grid& g, const Augmentation& a) const { return apply(a, g); }
  TaskTokens<CanvasTask> invert(std::span<const std::uint8_t> tokens, const Augmentation& a) const {
    return encode(arc::invert(a, crop(tokens, Side)));
  }
};

}  // namespace trm::data::arc
