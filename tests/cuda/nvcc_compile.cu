// nvcc compile check: the trm headers must compile under nvcc (C++20).
// Built when TRM_ENABLE_CUDA=ON; run only where a CUDA device exists.
#include <trm/trm.hpp>

#include <cstdio>

__global__ void trm_nvcc_compile_kernel(float* out) {
    out[threadIdx.x] = static_cast<float>(threadIdx.x);
}

int main() {
    std::printf("trm %s (nvcc compile check)\n", trm::version_string);
    return 0;
}
