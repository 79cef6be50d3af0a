// trm_gpu_launcher <exe> [args...]
//
// Runs <exe> only if a usable CUDA device exists. Otherwise prints a SKIP
// line and exits with 77, which the CTest tests using this launcher declare
// as SKIP_RETURN_CODE, so GPU tests show up as "Skipped" on machines without
// a GPU instead of failing.
#include <cstdio>
#include <cuda_runtime_api.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <exe> [args...]\n", argv[0]);
        return 2;
    }
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        std::printf("SKIP: no usable CUDA device (%s); not running %s\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "0 devices", argv[1]);
        return 77;
    }
    std::fflush(stdout);
    execv(argv[1], argv + 1);
    std::perror("trm_gpu_launcher: execv");
    return 127;
}
