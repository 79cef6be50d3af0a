#pragma once
// A seeded maze generator for any size 5x5..30x30 (not the procedure that made Maze-Hard, which
// is not published in the reference repo):
//   1. all walls; "rooms" are the cells with odd row and odd column inside the border
//      (rows 1, 3, ..., up to rows - 2; likewise columns);
//   2. a perfect maze over the rooms by randomised depth-first search (recursive backtracker,
//      iterative): from the current room, a random unvisited neighbouring room two cells away,
//      opening the wall cell between them; backtrack when none is left;
//   3. loops: each remaining wall cell between two horizontally or vertically adjacent rooms is
//      opened with probability loop_fraction (so 0 gives a unique path, > 0 often several);
//   4. S is a random room; G a random room at BFS distance >= min_distance from S (the farthest
//      room when none is that far);
//   5. answer = solve(question).answer (the deterministic shortest path of solver.hpp).
// Every draw comes from trm::Rng in this order, so a seed gives the same maze on every platform.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "trm/core/rng.hpp"
#include "trm/data/maze/csv.hpp"
#include "trm/data/maze/grid.hpp"
#include "trm/data/maze/solver.hpp"

namespace trm::data::maze {

struct GenerateOptions {
  int rows = 30;
  int cols = 30;
  double loop_fraction = 0.1;
  int min_distance = 0;
};

inline MazeExample generate(Rng& rng, const GenerateOptions& opt = {}) {
  detail::check_sides(opt.rows, opt.cols, "maze::generate");
  if (!(opt.loop_fraction >= 0.0 && opt.loop_fraction <= 1.0))
    throw ValueError("maze::generate: loop_fraction: expected a value in [0, 1], found " + std::to_string(opt.loop_fraction));
  Maze m(opt.rows, opt.cols, Cell::Wall);
  const int RR = (opt.rows - 1) / 2, RC = (opt.cols - 1) / 2;  // rooms per column / row
  auto room = [](int i) { return 2 * i + 1; };
  std::vector<char> seen(std::size_t(RR) * std::size_t(RC), 0);
  std::vector<std::pair<int, int>> stack;
  const int i0 = int(rng.below(std::uint64_t(RR))), j0 = int(rng.below(std::uint64_t(RC)));
  stack.push_back({i0, j0});
  seen[std::size_t(i0 * RC + j0)] = 1;
  m(room(i0), room(j0)) = Cell::Open;
  while (!stack.empty()) {
    const auto [i, j] = stack.back();
    std::pair<int, int> cand[4];
    int n = 0;
    for (const Pos s : detail::kSteps) {
      const int a = i + s.r, b = j + s.c;
      if (a >= 0 && a < RR && b >= 0 && b < RC && !seen[std::size_t(a * RC + b)]) cand[n++] = {a, b};
    }
    if (n == 0) {
      stack.pop_back();
      continue;
    }
    const auto [a, b] = cand[rng.below(std::uint64_t(n))];
    seen[std::size_t(a * RC + b)] = 1;
    m(room(a), room(b)) = Cell::Open;
    m(i + a + 1, j + b + 1) = Cell::Open;  // the wall cell between room (i, j) and room (a, b)
    stack.push_back({a, b});
  }
  if (opt.loop_fraction > 0)
    for (int r = 1; r <= 2 * RR - 1; ++r)
      for (int c = 1; c <= 2 * RC - 1; ++c) {
        const bool between = (r % 2 == 1) != (c % 2 == 1);  // odd row, even col or even row, odd col
        if (between && m(r, c) == Cell::Wall && rng.bernoulli(opt.loop_fraction)) m(r, c) = Cell::Open;
      }
  const int s = int(rng.below(std::uint64_t(RR) * std::uint64_t(RC)));
  const Pos S{room(s / RC), room(s % RC)};
  const std::vector<int> dist = detail::bfs(m, S);
  std::vector<Pos> far;
  int best = -1;
  Pos farthest = S;
  for (int i = 0; i < RR; ++i)
    for (int j = 0; j < RC; ++j) {
      const Pos p{room(i), room(j)};
      const int d = dist[std::size_t(m.index(p.r, p.c))];
      if (d <= 0) continue;
      if (d >= opt.min_distance) far.push_back(p);
      if (d > best) best = d, farthest = p;
    }
  const Pos G = far.empty() ? farthest : far[std::size_t(rng.below(far.size()))];
  m[S] = Cell::Start;
  m[G] = Cell::Goal;
  MazeExample ex;
  ex.source = "trm-generate";
  ex.question = m;
  const SolveResult r = solve(m, 2);
  ex.answer = *r.answer;
  ex.rating = std::to_string(*r.distance);
  return ex;
}

inline MazeExample generate(std::uint64_t seed, const GenerateOptions& opt = {}) {
  Rng rng(seed);
  return generate(rng, opt);
}

}  // namespace trm::data::maze
