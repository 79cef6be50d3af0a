// The GPU's entry points (--device cuda, trm::cuda_bf16) for arc 30 (see arc_impl.hpp); compiled by nvcc when trm is
// configured with CUDA.
#include <trm/cuda.hpp>

#include "arc_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE_ARC(30, trm::cuda_bf16)
}  // namespace trmcli
