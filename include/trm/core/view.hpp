#pragma once
// View: a non-owning, strided, rank-N window on memory of one memory space (mdspan-like).
// Element access is only available for host memory; device views are handed to device ops.
#include <array>
#include <cassert>
#include <span>
#include <type_traits>

#include "config.hpp"
#include "error.hpp"
#include "extents.hpp"
#include "memory.hpp"

namespace trm {

template <class T, class Ext, MemorySpace Space = host_space>
  requires is_extents_v<Ext>
class View {
 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;
  using extents_type = Ext;
  using memory_space = Space;
  static constexpr std::size_t rank = Ext::rank;
  using strides_type = std::array<index_t, rank>;

  constexpr View() = default;
  // Row-major (C order), contiguous.
  constexpr View(T* data, const Ext& ext) : data_(data), ext_(ext), strides_(row_major_strides(ext)) {}
  constexpr View(T* data, const Ext& ext, const strides_type& strides) : data_(data), ext_(ext), strides_(strides) {}

  // Converting constructor: T -> const T, and dynamic <-> static extents (checked at run time).
  template <class U, class OtherExt>
    requires(OtherExt::rank == rank && std::is_convertible_v<U (*)[], T (*)[]>)
  constexpr View(const View<U, OtherExt, Space>& other)
      : data_(other.data()), ext_(other.extents()), strides_(other.strides()) {}

  static constexpr strides_type row_major_strides(const Ext& ext) {
    strides_type s{};
    index_t acc = 1;
    for (std::size_t i = rank; i-- > 0;) {
      s[i] = acc;
      acc *= ext.extent(i);
    }
    return s;
  }

  constexpr T* data() const { return data_; }
  constexpr const Ext& extents() const { return ext_; }
  constexpr index_t extent(std::size_t i) const { return ext_.extent(i); }
  constexpr const strides_type& strides() const { return strides_; }
  constexpr index_t stride(std::size_t i) const { return strides_[i]; }
  constexpr index_t size() const { return ext_.size(); }
  constexpr bool empty() const { return size() == 0; }
  constexpr std::array<index_t, rank> shape() const { return ext_.dims(); }
  constexpr bool is_contiguous() const { return strides_ == row_major_strides(ext_); }

  template <class... I>
    requires(sizeof...(I) == rank && (std::convertible_to<I, index_t> && ...) && std::same_as<Space, host_space>)
  constexpr T& operator()(I... idx) const {
    std::array<index_t, rank> ii{static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t k = 0; k < rank; ++k) {
      assert(ii[k] >= 0 && ii[k] < ext_.extent(k));
      off += ii[k] * strides_[k];
    }
    return data_[off];
  }

  // The contiguous elements as a span (host or device pointer); throws if the view is strided.
  std::span<T> span() const {
    if (!is_contiguous()) throw ShapeError("span(): the view of shape " + format_shape(shape()) + " is not contiguous");
    return {data_, static_cast<std::size_t>(size())};
  }

  View<const T, Ext, Space> as_const() const { return *this; }

 private:
  T* data_ = nullptr;
  Ext ext_{};
  strides_type strides_{};
};

template <class T, MemorySpace Space = host_space>
using MatrixView = View<T, DynExtents<2>, Space>;
template <class T, MemorySpace Space = host_space>
using VectorView = View<T, DynExtents<1>, Space>;

// Reinterpret a contiguous view as another shape with the same number of elements.
template <class NewExt, class T, class Ext, class Space>
View<T, NewExt, Space> reshape(const View<T, Ext, Space>& v, const NewExt& ext) {
  if (!v.is_contiguous()) throw ShapeError("reshape of a strided view of shape " + format_shape(v.shape()));
  if (ext.size() != v.size())
    throw ShapeError("reshape: " + format_shape(v.shape()) + " has " + std::to_string(v.size()) +
                     " elements, target shape " + format_shape(ext.dims()) + " has " + std::to_string(ext.size()));
  return View<T, NewExt, Space>(v.data(), ext);
}

// A contiguous rank-N view seen as a matrix [prod(dims[0..N-2]), dims[N-1]].
template <class T, class Ext, class Space>
MatrixView<T, Space> as_matrix(const View<T, Ext, Space>& v) {
  index_t cols = Ext::rank == 0 ? 1 : v.extent(Ext::rank - 1);
  index_t rows = cols == 0 ? 0 : v.size() / cols;
  return reshape(v, DynExtents<2>{rows, cols});
}

// Columns [c0, c0+n) of a matrix view (strided; rows keep their stride).
template <class T, class Space>
MatrixView<T, Space> columns(const MatrixView<T, Space>& m, index_t c0, index_t n) {
  if (c0 < 0 || n < 0 || c0 + n > m.extent(1))
    throw ShapeError("columns(" + std::to_string(c0) + ", " + std::to_string(n) + ") of a matrix of shape " +
                     format_shape(m.shape()));
  return MatrixView<T, Space>(m.data() + c0 * m.stride(1), DynExtents<2>{m.extent(0), n}, m.strides());
}

// Rows [r0, r0+n) of a matrix view.
template <class T, class Space>
MatrixView<T, Space> rows(const MatrixView<T, Space>& m, index_t r0, index_t n) {
  if (r0 < 0 || n < 0 || r0 + n > m.extent(0))
    throw ShapeError("rows(" + std::to_string(r0) + ", " + std::to_string(n) + ") of a matrix of shape " +
                     format_shape(m.shape()));
  return MatrixView<T, Space>(m.data() + r0 * m.stride(0), DynExtents<2>{n, m.extent(1)}, m.strides());
}

// Element i of the leading axis of a rank-N view, as a rank-(N-1) view.
template <class T, index_t E0, index_t... E, class Space>
View<T, Extents<E...>, Space> slice0(const View<T, Extents<E0, E...>, Space>& v, index_t i) {
  if (i < 0 || i >= v.extent(0))
    throw ShapeError("index " + std::to_string(i) + " out of range for leading extent " + std::to_string(v.extent(0)));
  std::array<index_t, sizeof...(E)> dims{}, strides{};
  for (std::size_t k = 0; k < sizeof...(E); ++k) {
    dims[k] = v.extent(k + 1);
    strides[k] = v.stride(k + 1);
  }
  return View<T, Extents<E...>, Space>(v.data() + i * v.stride(0), Extents<E...>(dims), strides);
}

}  // namespace trm
