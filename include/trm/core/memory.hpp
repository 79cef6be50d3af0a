#pragma once
// Memory spaces: a tag on every view and tensor so that data living on one device can never be
// handed to an op of another (it does not compile, instead of crashing at run time).
#include <concepts>
#include <cstdlib>
#include <cstring>
#include <new>

#include "config.hpp"

namespace trm {

struct host_space {
  static constexpr const char* name = "host";
};
struct device_space {
  static constexpr const char* name = "device";
};

template <class S>
concept MemorySpace = std::same_as<S, host_space> || std::same_as<S, device_space>;

// How a memory space allocates. The device specialisation lives in trm/backend/cuda.hpp, so only
// translation units compiled by nvcc need the CUDA toolkit.
template <MemorySpace S>
struct space_allocator;

template <>
struct space_allocator<host_space> {
  // 64-byte alignment: whole cache lines, and full AVX-512 vectors for Eigen's aligned loads.
  static constexpr std::size_t alignment = 64;
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    void* p = std::aligned_alloc(alignment, rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  static void deallocate(void* p) noexcept { std::free(p); }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) std::memset(dst, 0, bytes);
  }
  // Host <-> this space: every space has them, so that code above the backends moves data between
  // the host and a tensor's space without knowing which space that is (here: plain copies).
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }
};

}  // namespace trm
