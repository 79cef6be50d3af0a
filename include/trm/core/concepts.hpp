#pragma once
// The concepts that tie the library together at compile time. A type that violates one is
// rejected at the point of use with the concept's name in the compiler's message.
#include <concepts>
#include <cstdint>
#include <string>

#include "memory.hpp"
#include "view.hpp"

namespace trm {

enum class Trans { N, T };

template <class T, MemorySpace S = host_space>
using CMatrixView = MatrixView<const T, S>;
template <class T, MemorySpace S = host_space>
using CVectorView = VectorView<const T, S>;
template <class T, MemorySpace S = host_space>
using Tensor3View = View<T, DynExtents<3>, S>;
template <class T, MemorySpace S = host_space>
using CTensor3View = View<const T, DynExtents<3>, S>;

// Scalars the layers are instantiated with: float for real work, double for gradient checks.
template <class T>
concept Scalar = std::same_as<T, float> || std::same_as<T, double>;

// A backend is a tag type naming its memory space and providing the whole op set, as static
// member function templates over views of that space (trm/backend/reference.hpp documents each
// op's contract; trm::reference is the plain-loop model every backend is tested against). This is
// the complete list a new backend must provide, checked for float (layers in double precision
// use the same templates on host backends).
//   name, memory_space                 what it is called; where its views live
//   set_num_threads, num_threads, synchronize
//   gemm(ta, tb, alpha, A, B, beta, C)                  C = alpha op(A) op(B) + beta C
//   gemm_batched(ta, tb, alpha, A, sa, B, sb, beta, C, sc, count)   the same for count matrices
//                                                       X_i = X shifted by i * sx elements
//   copy(x, y), fill(y, v), scale(y, a), axpy(a, x, y), add(a, b, out), dot(a, b)
//   transpose_batched(in [b, r, c], out [b, c, r], accumulate)
//   swiglu_forward(gate_up, out), swiglu_backward(gate_up, dout, dgate_up)
//   rmsnorm_forward(x, y, rstd, eps), rmsnorm_backward(y, rstd, dy, dx, accumulate)
//   softmax_rows(s, scale), softmax_rows_backward(p, dp, ds, scale)
//   rope(x, cos, sin, transpose)
//   gather_rows(table, ids, scale, out), scatter_add_rows(dout, ids, scale, dtable)
//   sum_rows(x, out, accumulate)
template <class B>
concept Backend = requires {
  typename B::memory_space;
  { B::name } -> std::convertible_to<const char*>;
} && MemorySpace<typename B::memory_space> &&
    requires(MatrixView<float, typename B::memory_space> m, CMatrixView<float, typename B::memory_space> c,
             VectorView<float, typename B::memory_space> v, CVectorView<float, typename B::memory_space> cv,
             CVectorView<std::int32_t, typename B::memory_space> ids, Tensor3View<float, typename B::memory_space> t3,
             CTensor3View<float, typename B::memory_space> ct3) {
      B::set_num_threads(1);
      { B::num_threads() } -> std::convertible_to<int>;
      B::synchronize();
      B::template gemm<float>(Trans::N, Trans::T, 1.0f, c, c, 0.0f, m);
      B::template gemm_batched<float>(Trans::N, Trans::T, 1.0f, c, 0, c, 0, 0.0f, m, 0, 1);
      B::template copy<float>(c, m);
      B::template fill<float>(m, 0.0f);
      B::template scale<float>(m, 1.0f);
      B::template axpy<float>(1.0f, c, m);
      B::template add<float>(c, c, m);
      { B::template dot<float>(c, c) } -> std::convertible_to<double>;
      B::template transpose_batched<float>(ct3, t3, false);
      B::template swiglu_forward<float>(c, m);
      B::template swiglu_backward<float>(c, c, m);
      B::template rmsnorm_forward<float>(c, m, v, 1e-5f);
      B::template rmsnorm_backward<float>(c, cv, c, m, true);
      B::template softmax_rows<float>(m, 1.0f);
      B::template softmax_rows_backward<float>(c, c, m, 1.0f);
      B::template rope<float>(m, c, c, false);
      B::template gather_rows<float>(c, ids, 1.0f, m);
      B::template scatter_add_rows<float>(c, ids, 1.0f, m);
      B::template sum_rows<float>(c, v, true);
    };

// A layer: parameters and configuration, a per-call Cache and a per-thread Workspace.
//
//   typename L::Cache      What backward needs from one forward call, beyond that call's input and
//                          output (which the caller keeps and passes back). One Cache per recorded
//                          call: the same weights may run many times in one step (TRM: 21 calls,
//                          n+1 = 7 recorded), each recorded call with its own Cache. A Cache lives
//                          from its forward to its backward, so it holds nothing else: no scratch.
//   typename L::Workspace  Scratch of one call at a time (forward or backward), reused across calls
//                          so that a training step stops allocating after the first. It carries
//                          nothing from one call to the next (a backward may use another Workspace
//                          than its forward did). May be an empty struct. A caller keeps one
//                          Workspace per thread that runs the layer (a recursion tape keeps one for
//                          its nets: the calls of a step run one after another). A composite
//                          layer's Workspace holds those of its parts.
//   clayer.forward(x, y, cache, ws)            y = f(x). Const: writes y, cache and ws only.
//   layer.backward(x, y, ccache, dy, dx, ws)   dx += (df/dx)^T dy (an empty dx skips the input
//                                              gradient); parameter grads += (df/dtheta)^T dy.
//                                              Non-const: it accumulates the parameter gradients.
//                                              Writes dx, the parameter gradients and ws only.
// Both structs are default-constructible: callers create them empty, the layer sizes them.
//
// Layers hold parameters and configuration only: no scratch members, nothing `mutable`. Hence a
// const layer (and a const Model) can run forward on several threads at once, each thread with
// its own Caches and Workspace, as far as the backend allows (the host backends do; trm::cuda's
// ops are for one host thread at a time, docs/CUDA.md). Backward, which writes the parameter
// gradients, runs on one thread at a time.
template <class L>
concept Layer = requires {
  typename L::scalar_type;
  typename L::backend_type;
  typename L::Cache;
  typename L::Workspace;
  typename L::input_view;
  typename L::output_view;
} && Scalar<typename L::scalar_type> && Backend<typename L::backend_type> &&
    std::default_initializable<typename L::Cache> && std::default_initializable<typename L::Workspace> &&
    requires(L& layer, const L& clayer, typename L::Cache& cache, const typename L::Cache& ccache,
             typename L::Workspace& ws, typename L::input_view in, typename L::output_view out) {
      clayer.forward(in, out, cache, ws);
      layer.backward(in, in, ccache, in, out, ws);
    };

}  // namespace trm
