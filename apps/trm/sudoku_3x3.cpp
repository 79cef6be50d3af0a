// trm sudoku train|solve|eval for 3x3 boxes: the compiled model configurations of this box shape.
#include "sudoku_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE(3, 3, trm::cpu)
}  // namespace trmcli
