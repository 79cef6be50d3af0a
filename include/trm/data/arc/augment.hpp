#pragma once
// The reference's ARC augmentation (build_arc_dataset.py's aug / inverse_aug): one of the 8
// dihedral transforms (trm/data/dihedral.hpp) after a permutation of the colours 1..9 (0, the
// background, stays). Applied to a grid: out = dihedral(map[grid], tid). A variant is named
//   "<task id>|||t<tid>|||<map[0]><map[1]>...<map[9]>"
// (e.g. "007bbfb7|||t3|||0724159638"), which is all an evaluator needs to map a prediction back:
// inverse colour map after the inverse dihedral transform. A name without "|||" is the task
// itself (the identity).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "trm/data/arc/grid.hpp"
#include "trm/data/dihedral.hpp"
#include "trm/data/numpy_random.hpp"

namespace trm::data::arc {

inline constexpr std::string_view name_separator = "|||";

struct Augmentation {
  int tid = 0;                                                   // dihedral transform id 0..7
  std::array<std::uint8_t, num_colours> colour_map{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // colour c -> colour_map[c]

  bool is_identity() const {
    for (int c = 0; c < num_colours; ++c)
      if (colour_map[std::size_t(c)] != c) return false;
    return tid == 0;
  }
  // The suffix of a variant's name: "|||t<tid>|||<map>".
  std::string name_suffix() const {
    std::string s(name_separator);
    s += 't';
    s += char('0' + tid);
    s += name_separator;
    for (auto c : colour_map) s += char('0' + c);
    return s;
  }
  friend bool operator==(const Augmentation&, const Augmentation&) = default;
};

// The reference's draw of one augmentation from the builder's stream: randint(0, 8), then the
// permutation of colours 1..9.
inline Augmentation draw_augmentation(NumpyLegacyRandom& rng) {
  Augmentation a;
  a.tid = int(rng.randint(0, 8));
  std::array<std::uint8_t, 9> perm{1, 2, 3, 4, 5, 6, 7, 8, 9};
  rng.shuffle(std::span<std::uint8_t>(perm));
  for (int c = 1; c < num_colours; ++c) a.colour_map[std::size_t(c)] = perm[std::size_t(c - 1)];
  return a;
}

inline Grid apply(const Augmentation& a, const Grid& g) {
  std::vector<std::uint8_t> mapped(g.cells.size());
  for (std::size_t k = 0; k < mapped.size(); ++k) mapped[k] = a.colour_map[g.cells[k]];
  const auto [r, c] = dihedral_shape(g.rows, g.cols, a.tid);
  Grid out;
  out.rows = r;
  out.cols = c;
  out.cells = dihedral(mapped, g.rows, g.cols, a.tid);
  return out;
}

// A grid in a variant's frame back to the task's frame: the inverse dihedral transform, then the
// inverse colour map. Colours must be 0..9 (a cropped prediction always is).
inline Grid invert(const Augmentation& a, const Grid& g) {
  std::array<std::uint8_t, num_colours> inverse{};
  for (int c = 0; c < num_colours; ++c) inverse[a.colour_map[std::size_t(c)]] = std::uint8_t(c);
  const auto [r, c] = dihedral_shape(g.rows, g.cols, dihedral_inverse[std::size_t(a.tid)]);
  Grid out;
  out.rows = r;
  out.cols = c;
  out.cells = inverse_dihedral(g.cells, g.rows, g.cols, a.tid);
  for (auto& v : out.cells) {
    if (v >= num_colours) throw ValueError("arc::invert: expected colours 0..9, found " + std::to_string(int(v)));
    v = inverse[v];
  }
  return out;
}

// A puzzle name -> (task id, augmentation). Names come from files (identifiers.json): anything
// other than "<id>" or "<id>|||t<0..7>|||<a permutation of 0..9 keeping 0>" is an ArcFormatError.
struct ParsedName {
  std::string task_id;
  Augmentation augmentation;
};
inline ParsedName parse_name(std::string_view name) {
  const auto first = name.find(name_separator);
  if (first == std::string_view::npos) return {std::string(name), {}};
  auto bad = [&](const std::string& why) -> ArcFormatError {
    return ArcFormatError("ARC puzzle name '" + io::bounded_message(std::string(name), 120) +
                          "': expected \"<task>|||t<0..7>|||<permutation of 0123456789 keeping 0>\", " + why);
  };
  // The reference reads the last two fields and takes the first as the task id.
  const auto last = name.rfind(name_separator);
  if (last == first) throw bad("found one separator");
  const auto mid = name.rfind(name_separator, last - 1);
  const std::string_view t = name.substr(mid + name_separator.size(), last - mid - name_separator.size());
  const std::string_view map = name.substr(last + name_separator.size());
  if (t.size() != 2 || t[0] != 't' || t[1] < '0' || t[1] > '7') throw bad("found transform '" + std::string(t) + "'");
  if (map.size() != std::size_t(num_colours)) throw bad("found colour map '" + io::bounded_message(std::string(map), 40) + "'");
  ParsedName p{std::string(name.substr(0, first)), {}};
  p.augmentation.tid = t[1] - '0';
  std::array<bool, num_colours> seen{};
  for (int c = 0; c < num_colours; ++c) {
    const char ch = map[std::size_t(c)];
    if (ch < '0' || ch > '9' || seen[std::size_t(ch - '0')]) throw bad("found colour map '" + std::string(map) + "'");
    seen[std::size_t(ch - '0')] = true;
    p.augmentation.colour_map[std::size_t(c)] = std::uint8_t(ch - '0');
  }
  if (p.augmentation.colour_map[0] != 0) throw bad("found colour map '" + std::string(map) + "' (0 moves)");
  return p;
}

}  // namespace trm::data::arc
