#pragma once
// The maze as a trm::data::Task (task.hpp): a Rows x Cols grid of "# SGo" tokens 1..5 (PAD 0,
// vocab 6, the reference's), questions without the path, answers with it. A valid answer is a
// shortest path (valid_and_shortest: any shortest path counts, not only the stored one). It
// generates (generate.hpp; by default only mazes with a unique shortest path, so the exact-match
// label is well defined), solves (BFS), augments (the 8 dihedral transforms, square mazes only:
// the others change the sides) and reads Maze-Hard CSV files.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "trm/core/error.hpp"
#include "trm/core/rng.hpp"
#include "trm/data/maze/augment.hpp"
#include "trm/data/maze/csv.hpp"
#include "trm/data/maze/generate.hpp"
#include "trm/data/maze/grid.hpp"
#include "trm/data/maze/solver.hpp"
#include "trm/data/task.hpp"

namespace trm::data::maze {

template <int Rows, int Cols = Rows>
  requires(Rows >= min_side && Rows <= max_side && Cols >= min_side && Cols <= max_side)
class MazeTask {
 public:
  using puzzle_type = Maze;
  using augmentation_type = int;  // dihedral transform id 0..7 (augment.hpp)
  using example_type = TaskExample<MazeTask>;

  static constexpr int rows = Rows, cols = Cols;
  static constexpr int vocab_size = maze::vocab_size;
  static constexpr std::uint8_t pad_token = 0;

  // The generator's settings (rows and cols are the task's); unique: redraw until the shortest
  // path is unique (at most max_draws draws per example, then a ValueError).
  GenerateOptions generator{.rows = Rows, .cols = Cols};
  bool unique = true;
  int max_draws = 1000;

  MazeTask() = default;
  explicit MazeTask(GenerateOptions g, bool unique_paths = true) : generator(g), unique(unique_paths) {
    generator.rows = Rows, generator.cols = Cols;
  }

  std::string name() const { return "maze " + std::to_string(Rows) + "x" + std::to_string(Cols); }

  TaskTokens<MazeTask> encode(const Maze& m) const {
    if (m.rows() != Rows || m.cols() != Cols)
      throw ShapeError(name() + ": expected a " + std::to_string(Rows) + "x" + std::to_string(Cols) + " maze, found " +
                       std::to_string(m.rows()) + "x" + std::to_string(m.cols()));
    TaskTokens<MazeTask> t{};
    encode_into(m, t);
    return t;
  }
  Maze decode(std::span<const std::uint8_t> tokens) const { return maze::decode(tokens, Rows, Cols); }
  bool is_valid_answer(const Maze& question, const Maze& answer) const {
    return question.rows() == Rows && question.cols() == Cols && valid_and_shortest(question, answer);
  }

  example_type generate(Rng& rng) const {
    for (int d = 0; d < max_draws; ++d) {
      MazeExample e = maze::generate(rng, generator);
      if (unique && !maze::solve(e.question).unique()) continue;
      return {e.question, e.answer};
    }
    throw ValueError(name() + ": no maze with a unique shortest path in " + std::to_string(max_draws) +
                     " draws (lower the generator's loop_fraction)");
  }
  std::optional<Maze> solve(const Maze& question) const { return maze::solve(question).answer; }
  static SolveResult solve_full(const Maze& question) { return maze::solve(question); }

  int identity_augmentation() const { return 0; }
  int random_augmentation(Rng& rng) const { return Rows == Cols ? int(rng.below(8)) : int(rng.below(2)) * 2; }
  Maze augment(const Maze& m, int tid) const {
    if (Rows != Cols && data::detail::dihedral_swaps_sides(tid))
      throw ValueError(name() + ": dihedral transform " + std::to_string(tid) + " swaps the sides of a non-square maze");
    return dihedral(m, tid);
  }
  TaskTokens<MazeTask> invert(std::span<const std::uint8_t> tokens, int tid) const {
    if (tokens.size() != std::size_t(Rows) * std::size_t(Cols))
      throw ShapeError(name() + ": expected " + std::to_string(Rows * Cols) + " tokens, found " + std::to_string(tokens.size()));
    if (Rows != Cols && data::detail::dihedral_swaps_sides(tid))
      throw ValueError(name() + ": dihedral transform " + std::to_string(tid) + " swaps the sides of a non-square maze");
    const std::vector<std::uint8_t> back = inverse_dihedral(tokens, Rows, Cols, tid);  // any token value
    TaskTokens<MazeTask> out{};
    std::copy(back.begin(), back.end(), out.begin());
    return out;
  }

  std::vector<example_type> read_examples(const std::filesystem::path& path) const {
    std::vector<example_type> out;
    for (const MazeExample& e : read_csv(path, MazeCsvOptions{.rows = Rows, .cols = Cols})) out.push_back({e.question, e.answer});
    return out;
  }
};

static_assert(GeneratingTask<MazeTask<9>> && SolvingTask<MazeTask<9>> && AugmentingTask<MazeTask<9>> &&
              ReadingTask<MazeTask<9>>);

}  // namespace trm::data::maze
