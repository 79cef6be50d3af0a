// `trm maze train|solve|eval` for 9x9 mazes (see maze_impl.hpp).
#include "maze_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE_MAZE(9, trm::cpu)
}  // namespace trmcli
