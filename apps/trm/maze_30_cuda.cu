// The GPU's entry points (--device cuda, trm::cuda_bf16) for maze 30 (see maze_impl.hpp); compiled by nvcc when trm is
// configured with CUDA.
#include <trm/cuda.hpp>

#include "maze_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE_MAZE(30, trm::cuda_bf16)
}  // namespace trmcli
