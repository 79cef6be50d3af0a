#pragma once
// Shared declarations of the backend op set: argument checks used by every backend, and the
// enumerations in op signatures. The op set itself is documented on trm::reference (reference.hpp):
// every backend implements the same static member functions with the same contracts.
#include <string>

#include "../core/concepts.hpp"
#include "../core/error.hpp"
#include "../core/view.hpp"

namespace trm {

namespace detail {

template <class A, class B>
void check_same_shape(const char* op, const char* a_name, const A& a, const char* b_name, const B& b) {
  if (a.extent(0) != b.extent(0) || a.extent(1) != b.extent(1))
    throw ShapeError(std::string(op) + ": " + b_name + " must have the shape of " + a_name + ": expected " +
                     format_shape(a.shape()) + ", found " + format_shape(b.shape()));
}

template <class M>
void check_unit_inner_stride(const char* op, const char* name, const M& m) {
  if (m.extent(1) > 1 && m.stride(1) != 1)
    throw ShapeError(std::string(op) + ": " + name + " must have unit column stride, found stride " +
                     std::to_string(m.stride(1)));
}

template <class T, class S>
void check_gemm(Trans ta, Trans tb, const CMatrixView<T, S>& a, const CMatrixView<T, S>& b, const MatrixView<T, S>& c) {
  index_t m = ta == Trans::N ? a.extent(0) : a.extent(1);
  index_t k = ta == Trans::N ? a.extent(1) : a.extent(0);
  index_t kb = tb == Trans::N ? b.extent(0) : b.extent(1);
  index_t n = tb == Trans::N ? b.extent(1) : b.extent(0);
  if (k != kb || c.extent(0) != m || c.extent(1) != n)
    throw ShapeError(std::string("gemm: op(A) is ") + format_shape({m, k}) + ", op(B) is " + format_shape({kb, n}) +
                     ": expected C of shape " + format_shape({m, n}) + " with matching inner sizes, found C " +
                     format_shape(c.shape()));
  check_unit_inner_stride("gemm", "A", a);
  check_unit_inner_stride("gemm", "B", b);
  check_unit_inner_stride("gemm", "C", c);
}

template <class G, class O>
void check_swiglu(const G& gate_up, const O& out_like, const char* out_name) {
  if (gate_up.extent(1) != 2 * out_like.extent(1) || gate_up.extent(0) != out_like.extent(0))
    throw ShapeError(std::string("swiglu: ") + out_name + " must be [rows, inter] for gate_up " +
                     format_shape(gate_up.shape()) + ": expected " +
                     format_shape({gate_up.extent(0), gate_up.extent(1) / 2}) + ", found " +
                     format_shape(out_like.shape()));
}

// rope's tables: cos and sin of one shape [n, head_dim], x [k n, head_dim] (k >= 1 sequences of n
// positions stacked: row r of x uses table row r mod n).
template <class X, class C, class S>
void check_rope_tables(const X& x, const C& cos, const S& sin) {
  if (cos.extent(0) != sin.extent(0) || cos.extent(1) != sin.extent(1) || cos.extent(1) != x.extent(1) ||
      (x.extent(0) > 0 && (cos.extent(0) == 0 || x.extent(0) % cos.extent(0) != 0)))
    throw ShapeError("rope: expected cos and sin tables of one shape [n, " + std::to_string(x.extent(1)) +
                     "] with n dividing x's " + std::to_string(x.extent(0)) + " rows, found cos " + format_shape(cos.shape()) +
                     " and sin " + format_shape(sin.shape()) + " for x " + format_shape(x.shape()));
}

template <class V>
void check_vector_size(const char* op, const char* name, const V& v, index_t n) {
  if (v.extent(0) != n)
    throw ShapeError(std::string(op) + ": " + name + ": expected shape " + format_shape({n}) + ", found " +
                     format_shape(v.shape()));
}

}  // namespace detail
}  // namespace trm
