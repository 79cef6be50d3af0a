// `trm arc train|eval|submit` on the reference's 30x30 canvas (see arc_impl.hpp).
#include "arc_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE_ARC(30, trm::cpu)
}  // namespace trmcli
