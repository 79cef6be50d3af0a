#pragma once
// Tensor: owning, contiguous, row-major storage in one memory space. Buffers are reused: resize()
// to a shape that fits the current capacity never allocates, so the caches and workspaces of a
// training step stop allocating after the first step.
#include <algorithm>
#include <span>
#include <string>
#include <utility>

#include "error.hpp"
#include "view.hpp"

namespace trm {

template <class T, class Ext, MemorySpace Space = host_space>
  requires is_extents_v<Ext>
class Tensor {
 public:
  using value_type = T;
  using extents_type = Ext;
  using memory_space = Space;
  static constexpr std::size_t rank = Ext::rank;
  using view_type = View<T, Ext, Space>;
  using const_view_type = View<const T, Ext, Space>;

  // With all extents static the shape is fixed from the start, so its storage is too (otherwise
  // size() would exceed capacity() and zero() or copying would touch a null buffer). A tensor with
  // a dynamic extent starts empty (that extent is 0) and allocates nothing.
  Tensor() {
    if constexpr (Ext::rank_dynamic == 0) resize(Ext{});
  }
  explicit Tensor(const Ext& ext) { resize(ext); }
  template <class... I>
    requires(sizeof...(I) == rank && rank > 0 && (std::convertible_to<I, index_t> && ...))
  explicit Tensor(I... dims) : Tensor(Ext(dims...)) {}

  Tensor(const Tensor& o) : Tensor(o.ext_) { space_allocator<Space>::copy(data_, o.data_, bytes()); }
  Tensor(Tensor&& o) noexcept { swap(o); }
  Tensor& operator=(Tensor o) noexcept {
    swap(o);
    return *this;
  }
  ~Tensor() { space_allocator<Space>::deallocate(data_); }

  void swap(Tensor& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(ext_, o.ext_);
    std::swap(capacity_, o.capacity_);
  }

  // Sets the shape; allocates only when the new size exceeds the capacity. Contents are
  // unspecified after a resize that changes the size (callers overwrite or zero()).
  void resize(const Ext& ext) {
    index_t n = ext.size();
    if (n > capacity_) {
      T* p = static_cast<T*>(space_allocator<Space>::allocate(static_cast<std::size_t>(n) * sizeof(T)));
      space_allocator<Space>::deallocate(data_);
      data_ = p;
      capacity_ = n;
    }
    ext_ = ext;
  }
  template <class... I>
    requires(sizeof...(I) == rank && (std::convertible_to<I, index_t> && ...))
  void resize(I... dims) {
    resize(Ext(dims...));
  }

  void zero() { space_allocator<Space>::zero(data_, bytes()); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  const Ext& extents() const { return ext_; }
  index_t extent(std::size_t i) const { return ext_.extent(i); }
  index_t size() const { return ext_.size(); }
  std::size_t bytes() const { return static_cast<std::size_t>(size()) * sizeof(T); }
  index_t capacity() const { return capacity_; }
  std::array<index_t, rank> shape() const { return ext_.dims(); }

  view_type view() { return view_type(data_, ext_); }
  const_view_type view() const { return const_view_type(data_, ext_); }
  const_view_type cview() const { return const_view_type(data_, ext_); }
  operator view_type() { return view(); }
  operator const_view_type() const { return view(); }

  template <class... I>
    requires(sizeof...(I) == rank && std::same_as<Space, host_space>)
  T& operator()(I... idx) {
    return view()(idx...);
  }
  template <class... I>
    requires(sizeof...(I) == rank && std::same_as<Space, host_space>)
  const T& operator()(I... idx) const {
    return view()(idx...);
  }

  // Host-only convenience for tests and I/O.
  std::span<T> span()
    requires std::same_as<Space, host_space>
  {
    return {data_, static_cast<std::size_t>(size())};
  }
  std::span<const T> span() const
    requires std::same_as<Space, host_space>
  {
    return {data_, static_cast<std::size_t>(size())};
  }

 private:
  T* data_ = nullptr;
  Ext ext_{};
  index_t capacity_ = 0;
};

template <class T, std::size_t R, MemorySpace Space = host_space>
using DynTensor = Tensor<T, DynExtents<R>, Space>;

// Moving whole tensors between the host and any memory space, for code that does not know (nor
// care) where a tensor lives: checkpoints, the trainer's small per-call copies, tests. On the host
// space they are plain copies. The destination is resized to the source's shape (no allocation
// when it fits).
template <class T, class Ext, MemorySpace S>
void download(const Tensor<T, Ext, S>& src, Tensor<T, Ext, host_space>& dst) {
  dst.resize(src.extents());
  space_allocator<S>::copy_to_host(dst.data(), src.data(), src.bytes());
}
template <class T, class Ext, MemorySpace S>
Tensor<T, Ext, host_space> download(const Tensor<T, Ext, S>& src) {
  Tensor<T, Ext, host_space> h;
  download(src, h);
  return h;
}
template <class T, class Ext, MemorySpace S>
void upload(const Tensor<T, Ext, host_space>& src, Tensor<T, Ext, S>& dst) {
  dst.resize(src.extents());
  space_allocator<S>::copy_from_host(dst.data(), src.data(), src.bytes());
}
// Host values into an existing tensor of any space, which keeps its shape: `src` must have
// exactly dst.size() elements (checked).
template <class T, class Ext, MemorySpace S>
void upload(std::span<const T> src, Tensor<T, Ext, S>& dst) {
  if (src.size() != std::size_t(dst.size()))
    throw ShapeError("upload: expected " + std::to_string(dst.size()) + " values for a tensor of shape " +
                     format_shape(dst.shape()) + ", found " + std::to_string(src.size()));
  space_allocator<S>::copy_from_host(dst.data(), src.data(), dst.bytes());
}
// One element of a tensor of any space (e.g. the bad value an error message names).
template <class T, class Ext, MemorySpace S>
T download_element(const Tensor<T, Ext, S>& src, index_t flat) {
  T v{};
  space_allocator<S>::copy_to_host(&v, src.data() + flat, sizeof(T));
  return v;
}

}  // namespace trm
