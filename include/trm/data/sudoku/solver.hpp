#pragma once
// Exact Sudoku solver with solution counting, and a seeded puzzle generator.
//
// The solver is a backtracking search over bitsets: each row, column and box keeps a mask of the
// digits it holds, so a cell's candidates are one OR and one NOT. Before every branch it
// propagates to a fixed point with naked singles (a cell with one candidate) and hidden singles
// (a digit with one possible cell in a row, column or box), then branches on an empty cell with
// the fewest candidates (most-constrained-cell heuristic). Counting stops as soon as `limit`
// solutions are found, so uniqueness checks (limit 2) are as fast as solving.
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string>

#include "trm/core/error.hpp"
#include "trm/core/rng.hpp"
#include "trm/data/sudoku/grid.hpp"

namespace trm::data::sudoku {

namespace detail {

using Mask = std::uint32_t;

template <class S>
struct UnitTables {
  static constexpr int num_peers = 2 * (S::n - 1) + (S::box_rows - 1) * (S::box_cols - 1);
  // Units 0..N-1 are rows, N..2N-1 columns, 2N..3N-1 boxes; unit_cells lists each unit's cells.
  std::array<std::array<std::uint8_t, S::n>, 3 * S::n> unit_cells{};
  std::array<std::uint8_t, S::cells> row{}, col{}, box{};
  // The cells sharing a row, column or box with each cell (each listed once).
  std::array<std::array<std::uint8_t, num_peers>, S::cells> peers{};
};

template <class S>
constexpr UnitTables<S> make_unit_tables() {
  UnitTables<S> t;
  std::array<int, 3 * S::n> fill{};
  for (int i = 0; i < S::cells; ++i) {
    t.row[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(S::row(i));
    t.col[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(S::col(i));
    t.box[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(S::box(i));
    const int units[3] = {S::row(i), S::n + S::col(i), 2 * S::n + S::box(i)};
    for (int u : units) {
      t.unit_cells[static_cast<std::size_t>(u)][static_cast<std::size_t>(fill[static_cast<std::size_t>(u)]++)] =
          static_cast<std::uint8_t>(i);
    }
  }
  for (int i = 0; i < S::cells; ++i) {
    int k = 0;
    for (int j = 0; j < S::cells; ++j) {
      if (j != i && (S::row(j) == S::row(i) || S::col(j) == S::col(i) || S::box(j) == S::box(i))) {
        t.peers[static_cast<std::size_t>(i)][static_cast<std::size_t>(k++)] = static_cast<std::uint8_t>(j);
      }
    }
  }
  return t;
}

template <class S>
inline constexpr UnitTables<S> unit_tables = make_unit_tables<S>();

// The search state: cell values, each empty cell's candidate mask (bit d-1 for digit d; 0 for a
// filled cell), per unit the mask of digits placed, and the cells whose candidates dropped to one
// or zero since the last propagation.
template <class S>
struct SolverState {
  static constexpr Mask full = (Mask(1) << S::n) - 1;
  std::array<std::uint8_t, S::cells> v{};
  std::array<Mask, S::cells> cand{};
  std::array<Mask, 3 * S::n> placed{};  // same unit numbering as UnitTables
  std::array<std::uint8_t, 2 * S::cells> pending{};  // a cell is queued at most twice (to 1, to 0)
  int npending = 0;
  int empty = S::cells;

  // Places digit d (1..N) in empty cell i; the caller guarantees d is a candidate there.
  void place(int i, int d) {
    const auto& t = unit_tables<S>;
    const auto c = static_cast<std::size_t>(i);
    const Mask b = Mask(1) << (d - 1);
    v[c] = static_cast<std::uint8_t>(d);
    cand[c] = 0;
    placed[t.row[c]] |= b;
    placed[S::n + t.col[c]] |= b;
    placed[2 * S::n + t.box[c]] |= b;
    --empty;
    for (auto p : t.peers[c]) {
      Mask& m = cand[p];
      if (m & b) {
        m &= ~b;
        if ((m & (m - 1)) == 0) pending[static_cast<std::size_t>(npending++)] = p;
      }
    }
  }
  // Loads a grid (values already range-checked); false when two givens conflict.
  bool load(const Grid<S>& g) {
    const auto& t = unit_tables<S>;
    for (int i = 0; i < S::cells; ++i) {
      const int d = g[static_cast<std::size_t>(i)];
      if (d == 0) continue;
      const auto c = static_cast<std::size_t>(i);
      const Mask b = Mask(1) << (d - 1);
      if ((placed[t.row[c]] | placed[S::n + t.col[c]] | placed[2 * S::n + t.box[c]]) & b) return false;
      v[c] = static_cast<std::uint8_t>(d);
      placed[t.row[c]] |= b;
      placed[S::n + t.col[c]] |= b;
      placed[2 * S::n + t.box[c]] |= b;
      --empty;
    }
    for (int i = 0; i < S::cells; ++i) {
      const auto c = static_cast<std::size_t>(i);
      if (v[c]) continue;
      cand[c] = full & ~(placed[t.row[c]] | placed[S::n + t.col[c]] | placed[2 * S::n + t.box[c]]);
      if ((cand[c] & (cand[c] - 1)) == 0) pending[static_cast<std::size_t>(npending++)] = static_cast<std::uint8_t>(i);
    }
    return true;
  }
};

// Naked and hidden singles to a fixed point; false on a contradiction.
template <class S>
bool propagate(SolverState<S>& s) {
  constexpr Mask full = SolverState<S>::full;
  const auto& t = unit_tables<S>;
  for (;;) {
    // Naked singles (and empty cells without candidates), driven by the pending queue.
    while (s.npending > 0) {
      const int i = s.pending[static_cast<std::size_t>(--s.npending)];
      if (s.v[static_cast<std::size_t>(i)]) continue;
      const Mask m = s.cand[static_cast<std::size_t>(i)];
      if (m == 0) return false;
      if ((m & (m - 1)) == 0) s.place(i, std::countr_zero(m) + 1);
    }
    if (s.empty == 0) return true;
    // Hidden singles: a digit with exactly one possible cell in a unit.
    bool progress = false;
    for (int u = 0; u < 3 * S::n; ++u) {
      const auto& cells = t.unit_cells[static_cast<std::size_t>(u)];
      Mask once = 0, twice = 0;
      for (auto c : cells) {
        const Mask m = s.cand[c];
        twice |= once & m;
        once |= m;
      }
      if ((once | s.placed[static_cast<std::size_t>(u)]) != full) return false;  // a digit has no place
      Mask hidden = once & ~twice;
      while (hidden) {
        const Mask bit = hidden & (~hidden + 1);
        hidden ^= bit;
        int where = -1;
        for (auto c : cells) {
          if (s.cand[c] & bit) {
            where = c;
            break;
          }
        }
        if (where < 0) return false;  // its only cell was just filled with another hidden single
        s.place(where, std::countr_zero(bit) + 1);
        progress = true;
      }
      if (s.npending > 0) break;  // drain the naked singles first
    }
    if (!progress && s.npending == 0) return true;
  }
}

template <class S>
class Search {
 public:
  Search(int limit, Rng* rng) : limit_(limit), rng_(rng) {}

  void run(SolverState<S> s) {
    if (!propagate(s)) return;
    if (s.empty == 0) {
      if (count_ == 0) first_ = s.v;
      ++count_;
      return;
    }
    // Most constrained empty cell.
    int best = -1, best_n = S::n + 1;
    Mask best_m = 0;
    for (int i = 0; i < S::cells; ++i) {
      const Mask m = s.cand[static_cast<std::size_t>(i)];
      if (m == 0) continue;  // filled (an empty cell without candidates was caught by propagate)
      const int k = std::popcount(m);
      if (k < best_n) {
        best = i;
        best_n = k;
        best_m = m;
        if (k == 2) break;
      }
    }
    std::array<int, S::n> digits{};
    int nd = 0;
    for (Mask m = best_m; m; m &= m - 1) digits[static_cast<std::size_t>(nd++)] = std::countr_zero(m) + 1;
    if (rng_) rng_->shuffle(digits.begin(), digits.begin() + nd);
    for (int k = 0; k < nd; ++k) {
      SolverState<S> next = s;
      next.place(best, digits[static_cast<std::size_t>(k)]);
      run(next);
      if (count_ >= limit_) return;
    }
  }

  int count() const { return count_; }
  const std::array<std::uint8_t, S::cells>& first() const { return first_; }

 private:
  int limit_;
  Rng* rng_;
  int count_ = 0;
  std::array<std::uint8_t, S::cells> first_{};
};

}  // namespace detail

// Number of solutions found (capped at `limit`) and the first one found.
template <SudokuShapeType S>
struct SolveResult {
  int count = 0;                    // 0, 1, ..., limit (limit means "at least limit")
  std::optional<Grid<S>> solution;  // the first solution found, if any
};

// Searches for up to `limit` solutions (limit >= 1). With `rng`, candidates are tried in a random
// order, so the first solution is a random one (seeded, reproducible). Values outside 0..N throw
// trm::ValueError; conflicting givens simply have no solution.
template <SudokuShapeType S>
SolveResult<S> solve_and_count(const Grid<S>& grid, int limit = 2, Rng* rng = nullptr) {
  if (limit < 1) throw ValueError("sudoku solver: limit must be >= 1, found " + std::to_string(limit));
  check_values(grid, "sudoku solver");
  SolveResult<S> r;
  detail::SolverState<S> s;
  if (!s.load(grid)) return r;
  detail::Search<S> search(limit, rng);
  search.run(s);
  r.count = search.count();
  if (r.count > 0) r.solution = Grid<S>::from_array(search.first());
  return r;
}

// A solution (the first found), or nullopt when there is none. Does not check uniqueness.
template <SudokuShapeType S>
std::optional<Grid<S>> solve(const Grid<S>& grid) {
  return solve_and_count(grid, 1).solution;
}

// The number of solutions, counting stops at `limit` (so 2 means "2 or more").
template <SudokuShapeType S>
int count_solutions(const Grid<S>& grid, int limit = 2) {
  return solve_and_count(grid, limit).count;
}

template <SudokuShapeType S>
bool has_unique_solution(const Grid<S>& grid) {
  return count_solutions(grid, 2) == 1;
}

// A uniformly-seeded random complete grid (randomised solver on the empty grid). Not exactly
// uniform over all grids, but reproducible for a given Rng state.
template <SudokuShapeType S>
Grid<S> random_solution(Rng& rng) {
  auto r = solve_and_count(Grid<S>{}, 1, &rng);
  return *r.solution;  // the empty grid always has solutions
}

// Seeded generator: draws a random complete grid, then visits the cells in a random order and
// blanks each one whose removal keeps the solution unique, stopping as soon as `blanks` cells are
// blank. One pass over all cells yields a minimal puzzle (uniqueness is monotone: a clue that
// could not be removed stays unremovable once more clues are gone), so if that pass ends with
// fewer than `blanks` blanks, this solution and order cannot reach the count and the generator
// starts again from a new random solution, up to `max_attempts` times; then it throws
// trm::ValueError saying how many blanks the best attempt reached.
//
// What is reachable: 4x4 up to 12 blanks (4 clues; 10-11 is common), 6x6 up to 28, 9x9 up to 64
// in theory (17 clues), but greedy removal typically stops at 22-26 clues, so 9x9 with more than
// about 58 blanks needs many attempts. Same Rng state -> same puzzle, on every platform.
template <SudokuShapeType S>
Example<S> generate(Rng& rng, int blanks, int max_attempts = 1000) {
  if (blanks < 0 || blanks > S::cells) {
    throw ValueError("sudoku generate: blanks must be in [0, " + std::to_string(S::cells) + "] for " + S::name() +
                     ", found " + std::to_string(blanks));
  }
  if (max_attempts < 1) throw ValueError("sudoku generate: max_attempts must be >= 1, found " + std::to_string(max_attempts));
  int best = -1;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    Example<S> ex;
    ex.solution = random_solution<S>(rng);
    ex.puzzle = ex.solution;
    std::array<int, S::cells> order{};
    for (int i = 0; i < S::cells; ++i) order[static_cast<std::size_t>(i)] = i;
    rng.shuffle(order.begin(), order.end());
    int removed = 0;
    for (int i : order) {
      if (removed == blanks) break;
      const auto c = static_cast<std::size_t>(i);
      const auto keep = ex.puzzle[c];
      ex.puzzle[c] = 0;
      if (count_solutions(ex.puzzle, 2) == 1) {
        ++removed;
      } else {
        ex.puzzle[c] = keep;
      }
    }
    if (removed == blanks) return ex;
    best = std::max(best, removed);
  }
  throw ValueError("sudoku generate: could not make a unique " + S::name() + " puzzle with " + std::to_string(blanks) +
                   " blanks in " + std::to_string(max_attempts) + " attempts (the best attempt reached " +
                   std::to_string(best) + " blanks); ask for fewer blanks or more attempts");
}

}  // namespace trm::data::sudoku
