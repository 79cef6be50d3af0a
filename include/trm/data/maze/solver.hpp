#pragma once
// Shortest paths in a maze: breadth-first search from S to G through passable cells (everything
// but '#'; 'o' counts as open), 4-neighbourhood, unit steps.
//   solve(maze, cap)            distance (number of moves), number of shortest paths (saturated at
//                               cap), one shortest path and the answer grid ('o' on its inner cells,
//                               S and G keep their letters, other cells as in the maze without 'o').
//   check_path(q, a)            why `a` is not a valid shortest answer to `q` (nullopt when it is):
//                               a has q's walls, S and G; its 'o' cells plus S and G form one simple
//                               4-connected path from S to G whose length is the BFS distance.
//   valid_and_shortest(q, a)    check_path(q, a) == nullopt. A maze can have several shortest paths,
//                               so this accepts answers that differ from a stored one.
// The path chosen for the answer is deterministic: walking back from G, the first neighbour in the
// order up, left, right, down that is one step closer to S.
#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "trm/data/maze/grid.hpp"

namespace trm::data::maze {

struct SolveResult {
  std::optional<int> distance;   // moves from S to G (path cells = distance + 1); nullopt: no path
  std::uint64_t num_shortest = 0;  // number of shortest paths, saturated at the cap
  std::vector<Pos> path;         // S ... G (empty without a path)
  std::optional<Maze> answer;    // the maze with 'o' on path's inner cells
  bool solvable() const { return distance.has_value(); }
  bool unique() const { return num_shortest == 1; }
};

namespace detail {
inline constexpr std::array<Pos, 4> kSteps{{{-1, 0}, {0, -1}, {0, 1}, {1, 0}}};  // up, left, right, down

// BFS distances from `from` over passable cells; -1 where unreachable.
inline std::vector<int> bfs(const Maze& m, Pos from) {
  std::vector<int> dist(std::size_t(m.size()), -1);
  std::deque<Pos> q;
  dist[std::size_t(m.index(from.r, from.c))] = 0;
  q.push_back(from);
  while (!q.empty()) {
    const Pos p = q.front();
    q.pop_front();
    const int d = dist[std::size_t(m.index(p.r, p.c))];
    for (const Pos s : kSteps) {
      const int r = p.r + s.r, c = p.c + s.c;
      if (!m.inside(r, c) || !passable(m(r, c))) continue;
      int& dn = dist[std::size_t(m.index(r, c))];
      if (dn >= 0) continue;
      dn = d + 1;
      q.push_back({r, c});
    }
  }
  return dist;
}

inline std::optional<std::string> start_goal_problem(const Maze& m, const char* what) {
  const int s = m.count(Cell::Start), g = m.count(Cell::Goal);
  if (s != 1 || g != 1)
    return std::string(what) + ": expected exactly one 'S' and one 'G', found " + std::to_string(s) + " 'S' and " +
           std::to_string(g) + " 'G'";
  return std::nullopt;
}
}  // namespace detail

// `cap` >= 1 bounds the path count (2 is enough to tell unique from not).
inline SolveResult solve(const Maze& maze, std::uint64_t cap = 2) {
  if (auto why = detail::start_goal_problem(maze, "maze::solve")) throw MazeFormatError(*why);
  if (cap < 1) cap = 1;
  const Maze m = maze.without_path();
  const Pos S = *m.start(), G = *m.goal();
  const std::vector<int> dist = detail::bfs(m, S);
  SolveResult out;
  const int dg = dist[std::size_t(m.index(G.r, G.c))];
  if (dg < 0) return out;
  out.distance = dg;

  // Path counts in order of distance (cells at distance d only depend on cells at d - 1).
  std::vector<std::vector<int>> layers(std::size_t(dg) + 1);
  for (int k = 0; k < m.size(); ++k)
    if (dist[std::size_t(k)] >= 0 && dist[std::size_t(k)] <= dg) layers[std::size_t(dist[std::size_t(k)])].push_back(k);
  std::vector<std::uint64_t> count(std::size_t(m.size()), 0);
  count[std::size_t(m.index(S.r, S.c))] = 1;
  for (int d = 1; d <= dg; ++d)
    for (int k : layers[std::size_t(d)]) {
      const int r = k / m.cols(), c = k % m.cols();
      std::uint64_t n = 0;
      for (const Pos s : detail::kSteps) {
        const int rr = r + s.r, cc = c + s.c;
        if (m.inside(rr, cc) && dist[std::size_t(m.index(rr, cc))] == d - 1) n = std::min(cap, n + count[std::size_t(m.index(rr, cc))]);
      }
      count[std::size_t(k)] = n;
    }
  out.num_shortest = count[std::size_t(m.index(G.r, G.c))];

  // Walk back from G.
  out.path.assign(std::size_t(dg) + 1, S);
  Pos p = G;
  for (int d = dg; d > 0; --d) {
    out.path[std::size_t(d)] = p;
    for (const Pos s : detail::kSteps) {
      const int r = p.r + s.r, c = p.c + s.c;
      if (m.inside(r, c) && dist[std::size_t(m.index(r, c))] == d - 1) {
        p = {r, c};
        break;
      }
    }
  }
  Maze a = m;
  for (std::size_t i = 1; i + 1 < out.path.size(); ++i) a[out.path[i]] = Cell::Path;
  out.answer = std::move(a);
  return out;
}

// The shortest distance from S to G (nullopt: no path).
inline std::optional<int> shortest_distance(const Maze& maze) { return solve(maze, 1).distance; }

// Why `answer` is not a valid shortest-path answer to `question` (nullopt: it is one).
inline std::optional<std::string> check_path(const Maze& question, const Maze& answer) {
  if (question.rows() != answer.rows() || question.cols() != answer.cols())
    return "answer: expected " + std::to_string(question.rows()) + "x" + std::to_string(question.cols()) + " (the question's size), found " +
           std::to_string(answer.rows()) + "x" + std::to_string(answer.cols());
  if (auto why = detail::start_goal_problem(question, "question")) return why;
  if (const int o = question.count(Cell::Path); o != 0)
    return "question: expected no 'o' cells, found " + std::to_string(o);
  for (int r = 0; r < question.rows(); ++r)
    for (int c = 0; c < question.cols(); ++c) {
      const Cell q = question(r, c), a = answer(r, c);
      const bool ok = a == q || (q == Cell::Open && a == Cell::Path);
      if (!ok)
        return "answer: " + detail::pos_name(r, c) + ": expected " + detail::show_char(to_char(q)) +
               (q == Cell::Open ? " or 'o'" : "") + " (the question has " + detail::show_char(to_char(q)) + "), found " +
               detail::show_char(to_char(a));
    }
  const Pos S = *question.start(), G = *question.goal();
  auto on_path = [&](int r, int c) {
    return answer.inside(r, c) && (answer(r, c) == Cell::Path || answer(r, c) == Cell::Start || answer(r, c) == Cell::Goal);
  };
  auto degree = [&](Pos p) {
    int n = 0;
    for (const Pos s : detail::kSteps) n += on_path(p.r + s.r, p.c + s.c) ? 1 : 0;
    return n;
  };
  const int cells = answer.count(Cell::Path) + 2;
  if (degree(S) != 1) return "answer: 'S' " + detail::pos_name(S.r, S.c) + ": expected 1 path neighbour, found " + std::to_string(degree(S));
  if (degree(G) != 1) return "answer: 'G' " + detail::pos_name(G.r, G.c) + ": expected 1 path neighbour, found " + std::to_string(degree(G));
  // Walk from S along the path; every inner cell must have exactly two path neighbours.
  Pos prev{-1, -1}, p = S;
  int walked = 1;
  while (!(p == G)) {
    if (!(p == S) && degree(p) != 2)
      return "answer: 'o' " + detail::pos_name(p.r, p.c) + ": expected 2 path neighbours (a simple path), found " + std::to_string(degree(p));
    Pos next{-1, -1};
    for (const Pos s : detail::kSteps) {
      const Pos n{p.r + s.r, p.c + s.c};
      if (on_path(n.r, n.c) && !(n == prev)) {
        next = n;
        break;
      }
    }
    prev = p;
    p = next;
    if (++walked > cells) break;  // cannot happen on a degree-checked path; kept as a guard
  }
  if (walked != cells)
    return "answer: expected the path from 'S' to 'G' to hold all " + std::to_string(cells - 2) + " 'o' cells, found " +
           std::to_string(walked - 2) + " on it (the others are disconnected)";
  const auto d = shortest_distance(question);
  if (!d) return std::string("question: expected a path from 'S' to 'G', found none");
  if (walked - 1 != *d)
    return "answer: expected a shortest path (" + std::to_string(*d) + " moves), found one of " + std::to_string(walked - 1) + " moves";
  return std::nullopt;
}

inline bool valid_and_shortest(const Maze& question, const Maze& answer) { return !check_path(question, answer); }

}  // namespace trm::data::maze
