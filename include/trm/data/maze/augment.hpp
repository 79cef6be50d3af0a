#pragma once
// The reference's 8 dihedral augmentations of a maze (trm/data/dihedral.hpp has the transforms
// of any grid; they are brought into this namespace so that maze::dihedral works on cells,
// tokens and Maze values alike). The dataset builder only augments square mazes (as the
// reference, whose grids are square).
#include <algorithm>

#include "trm/data/dihedral.hpp"
#include "trm/data/maze/grid.hpp"

namespace trm::data::maze {

using data::dihedral;
using data::dihedral_inverse;
using data::dihedral_shape;
using data::inverse_dihedral;
using data::num_dihedral;

inline Maze dihedral(const Maze& m, int tid) {
  const auto [R2, C2] = dihedral_shape(m.rows(), m.cols(), tid);
  const auto cells = dihedral(m.cells(), m.rows(), m.cols(), tid);
  Maze out(R2, C2);
  std::copy(cells.begin(), cells.end(), out.cells().begin());
  return out;
}
inline Maze inverse_dihedral(const Maze& m, int tid) {
  data::detail::check_dihedral_id(tid);
  return dihedral(m, dihedral_inverse[std::size_t(tid)]);
}

}  // namespace trm::data::maze
