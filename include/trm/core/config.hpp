#pragma once
// Basic types and portability macros shared by every trm header.
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define TRM_HOST_DEVICE __host__ __device__
#else
#define TRM_HOST_DEVICE
#endif

namespace trm {
// Signed index type, as Eigen and BLAS use: differences of indices stay representable.
using index_t = std::ptrdiff_t;
// The label of a position that is not supervised (the reference's IGNORE_LABEL_ID).
inline constexpr std::int32_t ignore_label = -100;
}  // namespace trm
