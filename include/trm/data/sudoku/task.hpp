#pragma once
// Sudoku as a trm::data::Task (data/task.hpp): the grid, solver, generator, augmentation and CSV
// reader of this module behind the task interface. SudokuTask<S> is every optional capability:
// GeneratingTask, SolvingTask, AugmentingTask (the reference augmentation, with its exact inverse)
// and ReadingTask (the CSV lists).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "trm/core/error.hpp"
#include "trm/core/rng.hpp"
#include "trm/data/sudoku/augment.hpp"
#include "trm/data/sudoku/csv.hpp"
#include "trm/data/sudoku/grid.hpp"
#include "trm/data/sudoku/solver.hpp"
#include "trm/data/sudoku/tokens.hpp"
#include "trm/data/task.hpp"

namespace trm::data::sudoku {

template <SudokuShapeType S>
class SudokuTask {
 public:
  using shape = S;
  using puzzle_type = Grid<S>;            // 0 = blank, 1..N = digits
  using augmentation_type = Transform<S>;  // digit relabelling, optional transpose, band/row/stack/col orders
  using example_type = TaskExample<SudokuTask>;

  static constexpr int rows = S::n, cols = S::n;
  static constexpr int vocab_size = S::vocab_size;  // pad 0, blank 1, digits 2..N+1
  static constexpr std::uint8_t pad_token = sudoku::pad_token;  // never produced: every cell is supervised

  // Settings of the optional capabilities: the generator's blanks and attempts, the CSV reader's.
  int blanks = S::cells / 2;
  int max_attempts = 1000;
  CsvOptions csv{};

  SudokuTask() = default;
  explicit SudokuTask(int generator_blanks, int generator_max_attempts = 1000, CsvOptions csv_options = {})
      : blanks(generator_blanks), max_attempts(generator_max_attempts), csv(csv_options) {}

  std::string name() const { return S::name(); }

  Tokens<S> encode(const Grid<S>& g) const { return sudoku::encode(g); }
  // Tokens 1..N+1 (a blank decodes to 0); errors name the cell and the token.
  Grid<S> decode(std::span<const std::uint8_t> tokens) const { return sudoku::decode<S>(tokens); }
  // A complete grid with no repeated digit in a row, column or box that keeps every given.
  bool is_valid_answer(const Grid<S>& question, const Grid<S>& answer) const {
    return is_valid_solution(answer) && keeps_givens(question, answer);
  }

  // A unique-solution puzzle with `blanks` blanks (sudoku::generate).
  example_type generate(Rng& rng) const {
    Example<S> ex = sudoku::generate<S>(rng, blanks, max_attempts);
    return {ex.puzzle, ex.solution};
  }
  std::optional<Grid<S>> solve(const Grid<S>& question) const { return sudoku::solve(question); }

  Transform<S> identity_augmentation() const { return Transform<S>::identity(); }
  // The reference's augmentation (random_transform): the same draws as sudoku::augment.
  Transform<S> random_augmentation(Rng& rng) const { return random_transform<S>(rng); }
  Grid<S> augment(const Grid<S>& g, const Transform<S>& k) const { return apply_transform(k, g); }
  // Any tokens: cells move back to where they came from and digit tokens 2..N+1 are relabelled
  // back; other tokens (pad, blank, out of range) move but keep their value.
  Tokens<S> invert(std::span<const std::uint8_t> tokens, const Transform<S>& k) const {
    return transform_tokens(inverse(k), tokens);
  }

  std::vector<example_type> read_examples(const std::filesystem::path& path) const {
    return to_task_examples(read_csv<S>(path, csv));
  }

  // apply_transform on a token sequence (see invert).
  static Tokens<S> transform_tokens(const Transform<S>& t, std::span<const std::uint8_t> tokens) {
    if (tokens.size() != static_cast<std::size_t>(S::cells)) {
      throw ShapeError("sudoku task: expected " + std::to_string(S::cells) + " tokens for " + S::name() + ", found " +
                       std::to_string(tokens.size()));
    }
    Tokens<S> out{};
    for (int r = 0; r < S::n; ++r) {
      for (int c = 0; c < S::n; ++c) {
        const int sr = t.row_perm[static_cast<std::size_t>(r)], sc = t.col_perm[static_cast<std::size_t>(c)];
        const std::uint8_t v = tokens[static_cast<std::size_t>(t.transpose ? S::cell(sc, sr) : S::cell(sr, sc))];
        out[static_cast<std::size_t>(S::cell(r, c))] =
            v > blank_token && v <= S::n + 1 ? static_cast<std::uint8_t>(t.digit_map[v - 1u] + 1) : v;
      }
    }
    return out;
  }

  static std::vector<example_type> to_task_examples(const std::vector<Example<S>>& examples) {
    std::vector<example_type> out;
    out.reserve(examples.size());
    for (const auto& e : examples) out.push_back({e.puzzle, e.solution});
    return out;
  }
  static std::vector<Example<S>> to_sudoku_examples(const std::vector<example_type>& examples) {
    std::vector<Example<S>> out;
    out.reserve(examples.size());
    for (const auto& e : examples) out.push_back({e.question, e.answer});
    return out;
  }
};

static_assert(Task<SudokuTask<Sudoku9>>);
static_assert(GeneratingTask<SudokuTask<Sudoku9>>);
static_assert(SolvingTask<SudokuTask<Sudoku9>>);
static_assert(AugmentingTask<SudokuTask<Sudoku9>>);
static_assert(ReadingTask<SudokuTask<Sudoku9>>);
static_assert(AugmentingTask<SudokuTask<Sudoku6>> && GeneratingTask<SudokuTask<Sudoku4>>);

}  // namespace trm::data::sudoku
