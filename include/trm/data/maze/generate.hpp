#pragma once
// Two seeded maze generators for any size 5x5..30x30.
//
// generate(rng, GenerateOptions): corridor mazes of this library's own design (not the kind
// Maze-Hard holds):
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
//
// generate_hard(rng, HardGenerateOptions): the procedure that made Maze-Hard, as far as it is
// published (the comment above generate_hard says where it comes from and what differs).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
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

// ---------------------------------------------------------------------------------------------
// generate_hard: mazes of the kind Maze-Hard (sapientinc/maze-30x30-hard-1k) holds.
//
// Where it comes from (docs/RESULTS.md, "Maze generation", has the sources):
//   - HRM paper (Wang et al. 2025, arXiv:2506.21734, section 3.1, "Maze-Hard"): 30x30 mazes made
//     with "the instance generation procedure of Lehnert et al." (Searchformer) plus "an
//     additional filter to retain only those instances whose difficulty exceeds 110", where
//     difficulty is "the length of the shortest path"; 1000 training and 1000 test mazes. The
//     script that made them is not published (build_maze_dataset.py only downloads the CSVs).
//   - Searchformer (Lehnert et al. 2024, arXiv:2402.14083), whose generator is
//     searchformer/maze.py in github.com/facebookresearch/searchformer: a width x height grid
//     with no border (the grid edge bounds the moves); the number of walls drawn uniformly from
//     (N div 10) * 3 .. (N div 10) * 5 for N cells (270..450 of 900 at 30x30), placed on
//     uniformly random cells; then, on that wall layout, up to 100 times: start and goal a
//     uniformly random pair of distinct open cells, kept if A* finds a path whose plan (the
//     cells S..G) has at least max(width, height) cells.
//
// What this implements. Every draw comes from trm::Rng, in this order:
//   per layout: k uniform in [floor(B * min_wall_fraction), floor(B * max_wall_fraction)] with
//     B = N rounded down to a multiple of 10 (Searchformer's bounds for the defaults 0.3 and
//     0.5); the walls are the first k cells of a partial Fisher-Yates shuffle of 0..N-1;
//   then up to pairs_per_layout times: S a uniform open cell, G a uniform other open cell; the
//     pair passes if the BFS distance from S to G is >= min_distance moves (the hardness rule)
//     and, with require_unique and UniqueBy::reject, the shortest path is unique;
//   the first passing pair makes the maze; a layout without one is dropped and a new one drawn,
//   at most max_layouts layouts (then trm::ValueError);
//   with require_unique and UniqueBy::wall_off (the default) the passing maze's ties are broken
//     in favour of the solver's path: a fewest set of open cells that every other shortest path
//     crosses (a minimum vertex cut, detail::wall_off_other_shortest_paths) becomes walls. Walls
//     only lengthen paths and the answer path stays open, so the distance (and the hardness
//     rule) is unchanged and the shortest path is unique.
//   Searchformer's own floor (a plan of >= max(rows, cols) cells) is below hard_min_distance
//   at every size; an explicit min_distance is the only rule.
//   answer = solve(question).answer (solver.hpp's deterministic shortest path), rating = the
//   distance in moves (as generate), source = "trm-generate-hard".
//
// What differs from Maze-Hard, as far as is known:
//   - the hardness rule is read in moves: "exceeds 110" -> distance >= 111 moves. The paper does
//     not say moves or cells; 111 moves (112 cells) passes both readings;
//   - one maze per call: the first passing pair of a layout, where Searchformer keeps every
//     passing pair of a layout (and HRM's sampling from that pool is not published). A layout
//     whose pairs pass with probability q weighs 1 - (1 - q)^100 here and 100 q in Searchformer's
//     pool: the same up to a factor 1 - 50 q, and q is about 6e-6 on average at 30x30;
//   - BFS instead of A* (the same distances), and the answer is solver.hpp's path, not A*'s;
//   - unique shortest paths: random-wall mazes with paths of 111+ moves almost never have one
//     (none of 100 accepted 30x30 mazes, docs/RESULTS.md), so rejection (UniqueBy::reject) only
//     works for short paths, and the default breaks ties with walls (UniqueBy::wall_off): about
//     15 extra walls at 30x30 (1.7 % of the cells), on the other shortest paths, that the
//     procedure does not draw. require_unique = false gives the procedure's mazes as they are (the label is
//     then one of several shortest paths);
//   - other sizes than 30x30 and the automatic hardness threshold for them (hard_min_distance)
//     are this library's extension; Maze-Hard is 30x30 only.
enum class UniqueBy { wall_off, reject };

struct HardGenerateOptions {
  int rows = 30;
  int cols = 30;
  double min_wall_fraction = 0.3;  // walls: floor(B * min) .. floor(B * max), B = cells rounded down to a multiple of 10
  double max_wall_fraction = 0.5;
  int min_distance = -1;  // hardness rule: shortest path >= min_distance moves; -1: hard_min_distance(rows, cols)
  bool require_unique = true;
  UniqueBy unique_by = UniqueBy::wall_off;
  int pairs_per_layout = 100;  // Searchformer's attempts per wall layout
  long max_layouts = 100000;   // then ValueError (about 30 s at 30x30)
};

// What one generate_hard call did (for measuring acceptance rates).
struct HardGenerateStats {
  long layouts = 0;      // wall layouts drawn
  long pairs = 0;        // (S, G) pairs tried
  long passing = 0;      // pairs at >= min_distance (before the uniqueness test)
  int walls_added = 0;   // walls added by UniqueBy::wall_off
};

// Maze-Hard's threshold, 111 moves ("exceeds 110"), at 30x30. Other sizes: 111 scaled with the
// side of the square of the same area less one, sqrt(rows * cols) - 1 (29 at 30x30), rounded
// down: 15 moves at 5x5, 30 at 9x9, 38 at 11x11, 72 at 20x20, 62 at 10x30. Measured on the
// procedure's (S, G) pairs, the share that passes is 4e-6 to 2e-5 at the sizes in
// docs/RESULTS.md (7e-6 at 30x30), so the cut is about as deep into the tail as Maze-Hard's;
// scaling with rows + cols instead asks for paths that elongated grids almost never have (73
// moves at 10x30: none in 2e6 pairs).
inline int hard_min_distance(int rows, int cols) {
  return int(std::floor(111.0 * (std::sqrt(double(rows) * double(cols)) - 1.0) / 29.0 + 1e-9));
}

namespace detail {
inline std::string fmt_double(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// BFS distance from s to g over open cells (wall[k] == 0), stopping when g is reached; -1 when g
// is unreachable. `stamp`/`mark` avoid clearing `dist` between calls.
struct HardBfs {
  std::vector<int> dist, queue;
  std::vector<std::uint32_t> mark;
  std::uint32_t stamp = 0;
  int distance(const std::vector<std::uint8_t>& wall, int rows, int cols, int s, int g) {
    const std::size_t n = std::size_t(rows) * std::size_t(cols);
    if (mark.size() != n) mark.assign(n, 0), dist.assign(n, 0), queue.assign(n, 0), stamp = 0;
    if (++stamp == 0) std::fill(mark.begin(), mark.end(), 0), stamp = 1;
    int head = 0, tail = 0;
    queue[std::size_t(tail++)] = s;
    mark[std::size_t(s)] = stamp;
    dist[std::size_t(s)] = 0;
    while (head < tail) {
      const int k = queue[std::size_t(head++)];
      const int d = dist[std::size_t(k)];
      if (k == g) return d;
      const int r = k / cols, c = k % cols;
      const int nb[4] = {r > 0 ? k - cols : -1, c > 0 ? k - 1 : -1, c + 1 < cols ? k + 1 : -1, r + 1 < rows ? k + cols : -1};
      for (int q : nb) {
        if (q < 0 || wall[std::size_t(q)] || mark[std::size_t(q)] == stamp) continue;
        mark[std::size_t(q)] = stamp;
        dist[std::size_t(q)] = d + 1;
        queue[std::size_t(tail++)] = q;
      }
    }
    return -1;
  }
  // Connected components of the open cells (comp[k] = -1 on walls) and their sizes: a pair in two
  // components, or in one smaller than the distance asked for, needs no BFS.
  std::vector<int> comp, comp_size;
  void label(const std::vector<std::uint8_t>& wall, int rows, int cols) {
    const std::size_t n = std::size_t(rows) * std::size_t(cols);
    comp.assign(n, -1);
    comp_size.clear();
    if (queue.size() != n) queue.assign(n, 0);
    for (std::size_t k0 = 0; k0 < n; ++k0) {
      if (wall[k0] || comp[k0] >= 0) continue;
      const int id = int(comp_size.size());
      int head = 0, tail = 0;
      queue[std::size_t(tail++)] = int(k0);
      comp[k0] = id;
      while (head < tail) {
        const int k = queue[std::size_t(head++)];
        const int r = k / cols, c = k % cols;
        const int nb[4] = {r > 0 ? k - cols : -1, c > 0 ? k - 1 : -1, c + 1 < cols ? k + 1 : -1, r + 1 < rows ? k + cols : -1};
        for (int q : nb)
          if (q >= 0 && !wall[std::size_t(q)] && comp[std::size_t(q)] < 0) comp[std::size_t(q)] = id, queue[std::size_t(tail++)] = q;
      }
      comp_size.push_back(tail);
    }
  }
};

// Breaks the ties of m's shortest S-G paths in favour of `path` (one of them): walls a fewest set of
// open cells such that `path` is the only shortest path left; returns how many.
// Any other shortest path leaves `path` at some cell and comes back to it later, through cells
// off `path` that are all on shortest paths (ds + dg == d). The cells walled are a minimum vertex
// cut between the cells where such detours start and those where they end, found by max-flow
// (unit capacity on each off-path cell, breadth-first augmenting paths in a fixed order, so the
// cut is deterministic). Walls only lengthen paths and `path` stays open: the distance is
// unchanged and `path` is the unique shortest path afterwards.
inline int wall_off_other_shortest_paths(Maze& m, const std::vector<Pos>& path) {
  const Pos S = path.front(), G = path.back();
  const int d = int(path.size()) - 1, n = m.size();
  const std::vector<int> ds = bfs(m, S), dg = bfs(m, G);
  std::vector<char> on_path(std::size_t(n), 0), dag(std::size_t(n), 0);
  for (const Pos p : path) on_path[std::size_t(m.index(p.r, p.c))] = 1;
  for (int k = 0; k < n; ++k) dag[std::size_t(k)] = ds[std::size_t(k)] >= 0 && dg[std::size_t(k)] >= 0 && ds[std::size_t(k)] + dg[std::size_t(k)] == d;
  // Flow network: off-path shortest-path cell k -> nodes 2k (in) and 2k+1 (out); source 2n, sink 2n+1.
  struct Edge {
    int to, cap, rev;
  };
  constexpr int inf = 1 << 20;
  std::vector<std::vector<Edge>> g(std::size_t(2 * n + 2));
  auto add = [&](int a, int b, int cap) {
    g[std::size_t(a)].push_back({b, cap, int(g[std::size_t(b)].size())});
    g[std::size_t(b)].push_back({a, 0, int(g[std::size_t(a)].size()) - 1});
  };
  const int src = 2 * n, snk = 2 * n + 1;
  bool any = false;
  for (int k = 0; k < n; ++k) {
    if (!dag[std::size_t(k)] || on_path[std::size_t(k)]) continue;
    add(2 * k, 2 * k + 1, 1);
    const int r = k / m.cols(), c = k % m.cols();
    for (const Pos s : kSteps) {
      const int rr = r + s.r, cc = c + s.c;
      if (!m.inside(rr, cc)) continue;
      const int q = m.index(rr, cc);
      if (!dag[std::size_t(q)] || ds[std::size_t(q)] != ds[std::size_t(k)] + 1) continue;  // edges k -> q of the shortest-path DAG
      if (on_path[std::size_t(q)])
        add(2 * k + 1, snk, inf), any = true;  // a detour ends at q
      else
        add(2 * k + 1, 2 * q, inf);
    }
    for (const Pos s : kSteps) {
      const int rr = r + s.r, cc = c + s.c;
      if (!m.inside(rr, cc)) continue;
      const int q = m.index(rr, cc);
      if (on_path[std::size_t(q)] && ds[std::size_t(k)] == ds[std::size_t(q)] + 1) add(src, 2 * k, inf);  // a detour starts at k
    }
  }
  if (!any) return 0;
  std::vector<int> prev_node(g.size()), prev_edge(g.size());
  std::vector<int> queue(g.size());
  auto reach = [&](std::vector<char>& seen) {  // BFS from src over edges with capacity left
    std::fill(seen.begin(), seen.end(), 0);
    int head = 0, tail = 0;
    queue[std::size_t(tail++)] = src;
    seen[std::size_t(src)] = 1;
    while (head < tail) {
      const int a = queue[std::size_t(head++)];
      for (int e = 0; e < int(g[std::size_t(a)].size()); ++e) {
        const Edge& ed = g[std::size_t(a)][std::size_t(e)];
        if (ed.cap <= 0 || seen[std::size_t(ed.to)]) continue;
        seen[std::size_t(ed.to)] = 1;
        prev_node[std::size_t(ed.to)] = a;
        prev_edge[std::size_t(ed.to)] = e;
        queue[std::size_t(tail++)] = ed.to;
      }
    }
  };
  std::vector<char> seen(g.size(), 0);
  while (true) {
    reach(seen);
    if (!seen[std::size_t(snk)]) break;
    for (int v = snk; v != src; v = prev_node[std::size_t(v)]) {  // every augmenting path carries 1 (an off-path cell)
      Edge& ed = g[std::size_t(prev_node[std::size_t(v)])][std::size_t(prev_edge[std::size_t(v)])];
      ed.cap -= 1;
      g[std::size_t(v)][std::size_t(ed.rev)].cap += 1;
    }
  }
  int added = 0;  // the cut: cells whose in-node is reachable from src and whose out-node is not
  for (int k = 0; k < n; ++k)
    if (dag[std::size_t(k)] && !on_path[std::size_t(k)] && seen[std::size_t(2 * k)] && !seen[std::size_t(2 * k + 1)])
      m.cells()[std::size_t(k)] = Cell::Wall, ++added;
  return added;
}
}  // namespace detail

inline MazeExample generate_hard(Rng& rng, const HardGenerateOptions& opt = {}, HardGenerateStats* stats = nullptr) {
  const std::string what = "maze::generate_hard: ";
  auto side = [&](const char* name, int v) {
    if (v < min_side || v > max_side)
      throw ValueError(what + name + ": expected " + std::to_string(min_side) + ".." + std::to_string(max_side) + ", found " +
                       std::to_string(v));
  };
  side("rows", opt.rows);
  side("cols", opt.cols);
  const int R = opt.rows, C = opt.cols, N = R * C;
  if (!(opt.min_wall_fraction >= 0.0 && opt.min_wall_fraction < 1.0))
    throw ValueError(what + "min_wall_fraction: expected a value in [0, 1), found " + detail::fmt_double(opt.min_wall_fraction));
  if (!(opt.max_wall_fraction >= opt.min_wall_fraction && opt.max_wall_fraction < 1.0))
    throw ValueError(what + "max_wall_fraction: expected a value in [min_wall_fraction (" + detail::fmt_double(opt.min_wall_fraction) +
                     "), 1), found " + detail::fmt_double(opt.max_wall_fraction));
  const int base = N - N % 10;
  auto walls_at = [&](double f) { return int(std::floor(double(base) * f + 1e-9)); };
  const int lo = walls_at(opt.min_wall_fraction), hi = walls_at(opt.max_wall_fraction);
  if (hi > N - 2)
    throw ValueError(what + "max_wall_fraction: expected at most " + std::to_string(N - 2) + " walls in " + std::to_string(R) + "x" +
                     std::to_string(C) + " (two cells for S and G), found " + std::to_string(hi) + " (" +
                     detail::fmt_double(opt.max_wall_fraction) + ")");
  if (opt.min_distance != -1 && (opt.min_distance < 1 || opt.min_distance > N - 1))
    throw ValueError(what + "min_distance: expected -1 (hard_min_distance(rows, cols)) or 1.." + std::to_string(N - 1) +
                     " moves, found " + std::to_string(opt.min_distance));
  if (opt.pairs_per_layout < 1)
    throw ValueError(what + "pairs_per_layout: expected >= 1, found " + std::to_string(opt.pairs_per_layout));
  if (opt.max_layouts < 1) throw ValueError(what + "max_layouts: expected >= 1, found " + std::to_string(opt.max_layouts));
  const int need = opt.min_distance == -1 ? hard_min_distance(R, C) : opt.min_distance;
  const bool reject_ties = opt.require_unique && opt.unique_by == UniqueBy::reject;

  HardGenerateStats st;
  std::vector<int> cells(std::size_t(N), 0);
  std::vector<std::uint8_t> wall(std::size_t(N), 0);
  detail::HardBfs bfs;
  for (long layout = 0; layout < opt.max_layouts; ++layout) {
    ++st.layouts;
    const int k = lo + int(rng.below(std::uint64_t(hi - lo + 1)));
    for (int i = 0; i < N; ++i) cells[std::size_t(i)] = i;
    for (int i = 0; i < k; ++i) std::swap(cells[std::size_t(i)], cells[std::size_t(i) + std::size_t(rng.below(std::uint64_t(N - i)))]);
    std::fill(wall.begin(), wall.end(), std::uint8_t(0));
    for (int i = 0; i < k; ++i) wall[std::size_t(cells[std::size_t(i)])] = 1;
    const int open = N - k;  // the open cells are cells[k .. N)
    bfs.label(wall, R, C);
    for (int pair = 0; pair < opt.pairs_per_layout; ++pair) {
      ++st.pairs;
      const int si = int(rng.below(std::uint64_t(open)));
      int gi = int(rng.below(std::uint64_t(open - 1)));
      if (gi >= si) ++gi;
      const int s = cells[std::size_t(k + si)], g = cells[std::size_t(k + gi)];
      const int cs = bfs.comp[std::size_t(s)];
      if (cs != bfs.comp[std::size_t(g)] || bfs.comp_size[std::size_t(cs)] <= need) continue;  // no path, or none that long
      const int d = bfs.distance(wall, R, C, s, g);
      if (d < need) continue;  // also d == -1: no path
      ++st.passing;
      Maze m(R, C, Cell::Open);
      for (int i = 0; i < N; ++i)
        if (wall[std::size_t(i)]) m.cells()[std::size_t(i)] = Cell::Wall;
      m(s / C, s % C) = Cell::Start;
      m(g / C, g % C) = Cell::Goal;
      SolveResult r = solve(m, 2);
      if (reject_ties && !r.unique()) continue;
      if (opt.require_unique && !r.unique()) {
        st.walls_added = detail::wall_off_other_shortest_paths(m, r.path);
        r = solve(m, 2);
        if (!r.unique() || *r.distance != d) throw std::logic_error(what + "tie-breaking walls changed the distance or left a tie");
      }
      MazeExample ex;
      ex.source = "trm-generate-hard";
      ex.question = m;
      ex.answer = *r.answer;
      ex.rating = std::to_string(*r.distance);
      if (stats) *stats = st;
      return ex;
    }
  }
  if (stats) *stats = st;
  throw ValueError(what + "no " + std::to_string(R) + "x" + std::to_string(C) + " maze with a shortest path of >= " + std::to_string(need) +
                   " moves" + (reject_ties ? " and no other shortest path" : "") + " in " + std::to_string(opt.max_layouts) +
                   " wall layouts x " + std::to_string(opt.pairs_per_layout) + " (S, G) pairs; lower min_distance" +
                   (reject_ties ? ", use UniqueBy::wall_off" : "") + " or raise max_layouts");
}

inline MazeExample generate_hard(std::uint64_t seed, const HardGenerateOptions& opt = {}, HardGenerateStats* stats = nullptr) {
  Rng rng(seed);
  return generate_hard(rng, opt, stats);
}

}  // namespace trm::data::maze
