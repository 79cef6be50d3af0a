// `trm arc train|eval|submit` on a 10x10 canvas (see arc_impl.hpp).
#include "arc_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE_ARC(10, trm::cpu)
}  // namespace trmcli
