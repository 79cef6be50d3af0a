// `trm maze train|solve|eval` for 30x30 mazes (see maze_impl.hpp).
#include "maze_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE_MAZE(30, trm::cpu)
}  // namespace trmcli
