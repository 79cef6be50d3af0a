// The GPU's entry points (--device cuda, trm::cuda_bf16) for sudoku 3x3 (see sudoku_impl.hpp); compiled by nvcc when trm is
// configured with CUDA.
#include <trm/cuda.hpp>

#include "sudoku_impl.hpp"

namespace trmcli {
TRM_CLI_INSTANTIATE(3, 3, trm::cuda_bf16)

bool cuda_device_available(std::string& why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    why = std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(err) + ")";
    return false;
  }
  if (n == 0) {
    why = "no CUDA device";
    return false;
  }
  return true;
}
}  // namespace trmcli
