// "Every op on every backend" for trm::cuda (in the manner of ggml's test-backend-ops): every op of
// the op set documented in trm/backend/reference.hpp runs on device copies of random inputs and is
// compared with trm::reference on the host, in float and in double, on odd sizes and strided
// sub-views (whole parent buffers are compared, so writes outside a view are caught too). Then every
// nn layer is instantiated with trm::cuda: a host twin (the same layer rebound to trm::reference) is
// initialised with a seed, its parameters (values and pre-filled gradients) are copied to the device,
// and forward outputs, input gradients and parameter gradients are compared.
// Runs only where a CUDA device exists (trm_gpu_launcher exits 77, "skipped", elsewhere).
// TRM_CUDA_TEST_VERBOSE=1 prints the worst error / tolerance ratio of every comparison.
//
// Tolerances: OpTol / reduction_tol in tests/support/tolerances.hpp (reductions, elementwise ops,
// ops with exp, whole layers: OpTol<T>::layer). Besides:
//  * dot accumulates products in double on both sides (exact for float inputs): only the order of
//    the double sum differs, bound 1e-12 * sqrt(n) relative to sum |a b|; softmax adds its row-sum
//    bound to the exp one.
//  * copy, fill, scale, add, transpose_batched, gather_rows perform the same single IEEE operation
//    (or none) per element: bit-identical results are required.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <trm/cuda.hpp>
#include <vector>

#include "support/check_throws.hpp"
#include "support/tolerances.hpp"

// A named namespace, not `using namespace trm` at global scope: CUDA's math_functions.hpp (included at
// the end of every .cu translation unit) calls ::erfinv unqualified, which trm::erfinv (rng.hpp) would
// make ambiguous.
namespace trm_cuda_tests {
using namespace trm;
using trm::test::OpTol;
using trm::test::reduction_tol;

static_assert(Backend<cuda>);
static_assert(std::same_as<cuda::memory_space, device_space>);

namespace {

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("TRM_CUDA_TEST_VERBOSE");
    return e && *e && *e != '0';
  }();
  return v;
}

template <class T>
using HMat = DynTensor<T, 2>;
template <class T>
using DMat = DynTensor<T, 2, device_space>;

template <class T>
constexpr T nan_v = std::numeric_limits<T>::quiet_NaN();

template <class T, std::size_t R>
DynTensor<T, R> random_tensor(const std::array<index_t, R>& dims, Rng& rng, double lo = -1.0, double hi = 1.0) {
  DynTensor<T, R> t{DynExtents<R>(dims)};
  for (auto& v : t.span()) v = T(rng.uniform(lo, hi));
  return t;
}
template <class T>
HMat<T> random_mat(index_t r, index_t c, Rng& rng, double lo = -1.0, double hi = 1.0) {
  return random_tensor<T, 2>({r, c}, rng, lo, hi);
}
template <class T, std::size_t R>
DynTensor<T, R> filled(const std::array<index_t, R>& dims, T value) {
  DynTensor<T, R> t{DynExtents<R>(dims)};
  for (auto& v : t.span()) v = value;
  return t;
}

// Worst |got - ref| / (tol * mag) over the elements (mag[i], or max(|ref[i]|, 1) when mag is empty);
// passes when <= 1. NaN anywhere fails.
template <class T>
void check_close(const std::string& what, std::span<const T> got, std::span<const T> ref, double tol,
                 std::span<const double> mag = {}) {
  REQUIRE(got.size() == ref.size());
  double worst = 0;
  std::size_t at = 0;
  bool bad = false;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double m = mag.empty() ? std::max(std::abs(double(ref[i])), 1.0) : mag[i];
    const double r = std::abs(double(got[i]) - double(ref[i])) / (tol * m);
    if (!(r <= worst)) {
      if (!(r == r) || !(got[i] == got[i])) bad = true;
      worst = r != r ? std::numeric_limits<double>::infinity() : r;
      at = i;
    }
  }
  if (verbose()) std::printf("  %-60s worst err/tol %.3g\n", what.c_str(), worst);
  INFO(what << ": worst error / tolerance " << worst << " at element " << at << " (gpu " << double(got[at])
            << ", reference " << double(ref[at]) << ", tolerance " << tol << ")");
  CHECK(!bad);
  CHECK(worst <= 1.0);
}
template <class T, class Ext>
void check_close(const std::string& what, const Tensor<T, Ext, device_space>& got, const Tensor<T, Ext>& ref,
                 double tol, std::span<const double> mag = {}) {
  auto g = to_host(got);
  check_close<T>(what, std::span<const T>(g.span()), std::span<const T>(ref.span()), tol, mag);
}
// Relative to the largest magnitude in ref (layer comparisons).
template <class T, class Ext>
void check_close_normwise(const std::string& what, const Tensor<T, Ext, device_space>& got, const Tensor<T, Ext>& ref,
                          double tol) {
  double mx = 0;
  for (auto v : ref.span()) mx = std::max(mx, std::abs(double(v)));
  std::vector<double> mag(static_cast<std::size_t>(ref.size()), mx > 0 ? mx : 1.0);
  check_close(what, got, ref, tol, mag);
}
template <class T, class Ext>
void check_equal(const std::string& what, const Tensor<T, Ext, device_space>& got, const Tensor<T, Ext>& ref) {
  auto g = to_host(got);
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < ref.span().size(); ++i)
    if (!(g.span()[i] == ref.span()[i])) {
      if (mismatches++ == 0) first = i;
    }
  if (verbose()) std::printf("  %-60s %s\n", what.c_str(), mismatches ? "MISMATCH" : "bit-identical");
  INFO(what << ": " << mismatches << " elements differ, first at " << first << " (gpu " << double(g.span()[first])
            << ", reference " << double(ref.span()[first]) << ")");
  CHECK(mismatches == 0);
}

// Columns [1, 1 + c) of a [r, c + 3] parent: a strided sub-view (row stride c + 3).
template <class T, class Space>
MatrixView<T, Space> inner_cols(MatrixView<T, Space> parent, index_t c) {
  return columns(parent, 1, c);
}

// A host matrix and its device twin, plus the (possibly strided) views the op works on.
template <class T>
struct Pair {
  HMat<T> h;
  DMat<T> d;
  index_t rows, cols;
  bool strided;
  Pair(HMat<T> host, index_t r, index_t c, bool s) : h(std::move(host)), d(to_device(h)), rows(r), cols(c), strided(s) {}
  MatrixView<T> hv() { return strided ? inner_cols(h.view(), cols) : h.view(); }
  MatrixView<T, device_space> dv() { return strided ? inner_cols(d.view(), cols) : d.view(); }
  CMatrixView<T> chv() { return hv(); }
  CMatrixView<T, device_space> cdv() { return dv(); }
};
template <class T>
Pair<T> random_pair(index_t r, index_t c, bool strided, Rng& rng, double lo = -1.0, double hi = 1.0) {
  return Pair<T>(random_mat<T>(r, strided ? c + 3 : c, rng, lo, hi), r, c, strided);
}
template <class T>
Pair<T> filled_pair(index_t r, index_t c, bool strided, T value) {
  return Pair<T>(filled<T, 2>({r, strided ? c + 3 : c}, value), r, c, strided);
}

const char* tn(Trans t) { return t == Trans::N ? "N" : "T"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// The backend itself
// ---------------------------------------------------------------------------------------------
TEST_CASE("cuda backend: identity, threads, synchronize, host <-> device copies") {
  CHECK(std::string(cuda::name) == "cuda");
  cuda::set_num_threads(8);
  CHECK(cuda::num_threads() == 1);
  cuda::synchronize();
  Rng rng(1);
  auto h = random_tensor<float, 3>({2, 3, 5}, rng);
  auto d = to_device(h);
  CHECK(d.shape() == h.shape());
  DynTensor<float, 3, device_space> d2 = d;  // device-to-device copy (space_allocator::copy)
  auto back = to_host(d2);
  for (index_t i = 0; i < h.size(); ++i) CHECK(back.span()[i] == h.span()[i]);
  d2.zero();
  DynTensor<float, 3> z;
  copy_to_host(d2, z);
  for (auto v : z.span()) CHECK(v == 0.0f);
  copy_to_device(h, d2);
  copy_to_host(d2, z);
  for (index_t i = 0; i < h.size(); ++i) CHECK(z.span()[i] == h.span()[i]);
  // Empty tensors allocate nothing and copy nothing.
  DynTensor<double, 2, device_space> e;
  CHECK(e.data() == nullptr);
  auto eh = to_host(e);
  CHECK(eh.size() == 0);
}

TEST_CASE("cuda backend: a failed CUDA call throws std::runtime_error naming the call, file and error") {
  // More memory than any GPU has: cudaMalloc fails with cudaErrorMemoryAllocation.
  CHECK_THROWS_CONTAINING((void)space_allocator<device_space>::allocate(std::size_t(1) << 60), std::runtime_error,
                          "cudaMalloc", "cuda.hpp:", "out of memory");
  // The error is not sticky: the backend keeps working.
  DMat<float> m(3, 4);
  cuda::fill(m.view(), 2.0f);
  cuda::synchronize();
  auto h = to_host(m);
  for (auto v : h.span()) CHECK(v == 2.0f);
}

// ---------------------------------------------------------------------------------------------
// gemm
// ---------------------------------------------------------------------------------------------
TEST_CASE_TEMPLATE("gemm: cuda matches reference, all transposes, beta 0 (C = NaN) and 1, strided views", T, float,
                   double) {
  Rng rng(11);
  struct Shape {
    index_t m, n, k;
  };
  const Shape shapes[] = {{37, 29, 53}, {1, 7, 5}, {6, 1, 9}, {16, 16, 300}, {5, 4, 1}};
  const T alpha = T(0.75);
  for (auto [m, n, k] : shapes)
    for (Trans ta : {Trans::N, Trans::T})
      for (Trans tb : {Trans::N, Trans::T})
        for (T beta : {T(0), T(1), T(-0.5)})
          for (bool strided : {false, true}) {
            auto A = ta == Trans::N ? random_pair<T>(m, k, strided, rng) : random_pair<T>(k, m, strided, rng);
            auto B = tb == Trans::N ? random_pair<T>(k, n, strided, rng) : random_pair<T>(n, k, strided, rng);
            auto C = beta == T(0) ? filled_pair<T>(m, n, strided, nan_v<T>) : random_pair<T>(m, n, strided, rng);
            // Magnitudes of the terms of each output (the padding columns keep max(|x|, 1)).
            std::vector<double> mag(static_cast<std::size_t>(C.h.size()), 1.0);
            auto ah = A.chv(), bh = B.chv();
            auto ch = C.hv();
            for (index_t i = 0; i < m; ++i)
              for (index_t j = 0; j < n; ++j) {
                const double s =
                    trm::test::gemm_term_magnitude(ta, tb, double(alpha), double(beta), ah, bh, double(ch(i, j)), i, j, k);
                mag[static_cast<std::size_t>(&ch(i, j) - C.h.data())] = std::max(s, 1e-30);
              }
            // Padding columns of a NaN-filled strided C stay NaN on both sides: compare them as equal.
            reference::gemm<T>(ta, tb, alpha, A.chv(), B.chv(), beta, C.hv());
            cuda::gemm<T>(ta, tb, alpha, A.cdv(), B.cdv(), beta, C.dv());
            auto got = to_host(C.d);
            if (beta == T(0) && strided)
              for (index_t i = 0; i < m; ++i)
                for (index_t j = 0; j < n + 3; ++j)
                  if (j < 1 || j >= n + 1) {
                    CHECK(std::isnan(got(i, j)));  // never written
                    got(i, j) = C.h(i, j) = T(0);
                  }
            const std::string what = std::string("gemm ") + tn(ta) + tn(tb) + " m" + std::to_string(m) + " n" +
                                     std::to_string(n) + " k" + std::to_string(k) + " beta " +
                                     std::to_string(double(beta)) + (strided ? " strided" : "");
            check_close<T>(what, std::span<const T>(got.span()), std::span<const T>(C.h.span()), reduction_tol<T>(k),
                           mag);
          }
}

TEST_CASE_TEMPLATE("gemm: k = 0 and empty outputs", T, float, double) {
  Rng rng(12);
  DMat<T> a(4, 0), b(0, 3);
  auto c = random_mat<T>(4, 3, rng);
  auto cd = to_device(c);
  cuda::gemm<T>(Trans::N, Trans::N, T(1), a.cview(), b.cview(), T(2), cd.view());
  reference::gemm<T>(Trans::N, Trans::N, T(1), HMat<T>(4, 0).cview(), HMat<T>(0, 3).cview(), T(2), c.view());
  check_equal("gemm k=0 beta 2", cd, c);
  auto n = filled<T, 2>({4, 3}, nan_v<T>);
  auto nd = to_device(n);
  cuda::gemm<T>(Trans::N, Trans::N, T(1), a.cview(), b.cview(), T(0), nd.view());
  const auto nh = to_host(nd);
  for (auto v : nh.span()) CHECK(v == T(0));
  DMat<T> e0(0, 5), e1(5, 3), e2(0, 3);
  cuda::gemm<T>(Trans::N, Trans::N, T(1), e0.cview(), e1.cview(), T(0), e2.view());
  cuda::synchronize();
}

// ---------------------------------------------------------------------------------------------
// Elementwise ops
// ---------------------------------------------------------------------------------------------
TEST_CASE_TEMPLATE("copy, fill, scale, axpy, add: cuda matches reference on strided views", T, float, double) {
  Rng rng(21);
  for (bool strided : {false, true}) {
    const std::string sfx = strided ? " strided" : "";
    {
      auto x = random_pair<T>(13, 17, strided, rng);
      auto y = random_pair<T>(13, 17, strided, rng);
      reference::copy<T>(x.chv(), y.hv());
      cuda::copy<T>(x.cdv(), y.dv());
      check_equal("copy" + sfx, y.d, y.h);
    }
    {
      auto y = random_pair<T>(13, 17, strided, rng);
      reference::fill<T>(y.hv(), T(-3.25));
      cuda::fill<T>(y.dv(), T(-3.25));
      check_equal("fill" + sfx, y.d, y.h);
    }
    {
      auto y = random_pair<T>(13, 17, strided, rng);
      reference::scale<T>(y.hv(), T(0.3));
      cuda::scale<T>(y.dv(), T(0.3));
      check_equal("scale" + sfx, y.d, y.h);
    }
    {
      auto x = random_pair<T>(13, 17, strided, rng);
      auto y = random_pair<T>(13, 17, strided, rng);
      reference::axpy<T>(T(-1.7), x.chv(), y.hv());
      cuda::axpy<T>(T(-1.7), x.cdv(), y.dv());
      check_close("axpy" + sfx, y.d, y.h, OpTol<T>::elementwise);
    }
    {
      auto a = random_pair<T>(13, 17, strided, rng);
      auto b = random_pair<T>(13, 17, strided, rng);
      auto o = random_pair<T>(13, 17, strided, rng);
      reference::add<T>(a.chv(), b.chv(), o.hv());
      cuda::add<T>(a.cdv(), b.cdv(), o.dv());
      check_equal("add" + sfx, o.d, o.h);
      // out aliasing a
      reference::add<T>(a.chv(), b.chv(), a.hv());
      cuda::add<T>(a.cdv(), b.cdv(), a.dv());
      check_equal("add, out aliasing a" + sfx, a.d, a.h);
    }
  }
  // Empty views launch nothing.
  DMat<T> e(0, 4);
  cuda::fill<T>(e.view(), T(1));
  cuda::copy<T>(e.cview(), e.view());
  cuda::synchronize();
}

TEST_CASE_TEMPLATE("transpose_batched: cuda matches reference (overwrite and accumulate, strided input)", T, float,
                   double) {
  Rng rng(22);
  for (bool accumulate : {false, true})
    for (bool strided : {false, true}) {
      // in [3, 5, 7], as a view into a [3, 5, 9] parent when strided.
      auto parent = random_tensor<T, 3>({3, 5, strided ? 9 : 7}, rng);
      auto parent_d = to_device(parent);
      const std::array<index_t, 3> st{5 * parent.extent(2), parent.extent(2), 1};
      Tensor3View<const T> in_h(parent.data(), DynExtents<3>{3, 5, 7}, st);
      Tensor3View<const T, device_space> in_d(parent_d.data(), DynExtents<3>{3, 5, 7}, st);
      auto out = random_tensor<T, 3>({3, 7, 5}, rng);
      auto out_d = to_device(out);
      reference::transpose_batched<T>(in_h, out.view(), accumulate);
      cuda::transpose_batched<T>(in_d, out_d.view(), accumulate);
      check_equal(std::string("transpose_batched") + (accumulate ? " accumulate" : "") + (strided ? " strided" : ""),
                  out_d, out);
    }
}

TEST_CASE_TEMPLATE("swiglu forward and backward: cuda matches reference", T, float, double) {
  Rng rng(23);
  for (bool strided : {false, true}) {
    const index_t rows = 13, inter = 19;
    auto gu = random_pair<T>(rows, 2 * inter, strided, rng, -4.0, 4.0);
    auto out = random_pair<T>(rows, inter, strided, rng);
    reference::swiglu_forward<T>(gu.chv(), out.hv());
    cuda::swiglu_forward<T>(gu.cdv(), out.dv());
    check_close(std::string("swiglu_forward") + (strided ? " strided" : ""), out.d, out.h, OpTol<T>::transcendental);
    auto dout = random_pair<T>(rows, inter, strided, rng);
    auto dgu = filled_pair<T>(rows, 2 * inter, strided, T(7));
    reference::swiglu_backward<T>(gu.chv(), dout.chv(), dgu.hv());
    cuda::swiglu_backward<T>(gu.cdv(), dout.cdv(), dgu.dv());
    check_close(std::string("swiglu_backward") + (strided ? " strided" : ""), dgu.d, dgu.h, OpTol<T>::transcendental);
  }
}

TEST_CASE_TEMPLATE("rope forward and transpose: cuda matches reference on strided head views", T, float, double) {
  Rng rng(24);
  const index_t seq = 9, hd = 8;
  auto cs = random_mat<T>(seq, hd, rng);
  auto sn = random_mat<T>(seq, hd, rng);
  auto cs_d = to_device(cs);
  auto sn_d = to_device(sn);
  for (bool transpose : {false, true}) {
    // The second head of a [seq, 3 * hd] fused projection.
    auto qkv = random_mat<T>(seq, 3 * hd, rng);
    auto qkv_d = to_device(qkv);
    reference::rope<T>(columns(qkv.view(), hd, hd), cs.cview(), sn.cview(), transpose);
    cuda::rope<T>(columns(qkv_d.view(), hd, hd), cs_d.cview(), sn_d.cview(), transpose);
    check_close(std::string("rope") + (transpose ? " transpose" : ""), qkv_d, qkv, OpTol<T>::elementwise);
  }
  DMat<T> odd(2, 3);
  CHECK_THROWS_CONTAINING(cuda::rope<T>(odd.view(), odd.cview(), odd.cview(), false), ShapeError, "rope", "even");
}

// ---------------------------------------------------------------------------------------------
// Row-wise reductions
// ---------------------------------------------------------------------------------------------
TEST_CASE_TEMPLATE("rmsnorm forward (also in place) and backward: cuda matches reference", T, float, double) {
  Rng rng(31);
  for (index_t cols : {7, 300})
    for (bool strided : {false, true}) {
      const index_t rows = 11;
      const std::string sfx = " cols " + std::to_string(cols) + (strided ? " strided" : "");
      const double tol = OpTol<T>::elementwise + reduction_tol<T>(cols);
      auto x = random_pair<T>(rows, cols, strided, rng, -2.0, 2.0);
      auto y = filled_pair<T>(rows, cols, strided, T(5));
      HMat<T> rs(1, rows);
      auto rs_d = to_device(rs);
      VectorView<T> rsv(rs.data(), DynExtents<1>{rows});
      VectorView<T, device_space> rsv_d(rs_d.data(), DynExtents<1>{rows});
      reference::rmsnorm_forward<T>(x.chv(), y.hv(), rsv, T(1e-5));
      cuda::rmsnorm_forward<T>(x.cdv(), y.dv(), rsv_d, T(1e-5));
      check_close("rmsnorm_forward y" + sfx, y.d, y.h, tol);
      check_close("rmsnorm_forward rstd" + sfx, rs_d, rs, tol);
      // In place (y aliasing x), as ResidualNorm calls it.
      auto xi = random_pair<T>(rows, cols, strided, rng, -2.0, 2.0);
      HMat<T> rsi(1, rows);
      auto rsi_d = to_device(rsi);
      reference::rmsnorm_forward<T>(xi.chv(), xi.hv(), VectorView<T>(rsi.data(), DynExtents<1>{rows}), T(1e-5));
      cuda::rmsnorm_forward<T>(xi.cdv(), xi.dv(), VectorView<T, device_space>(rsi_d.data(), DynExtents<1>{rows}),
                               T(1e-5));
      check_close("rmsnorm_forward in place" + sfx, xi.d, xi.h, tol);
      check_close("rmsnorm_forward in place, rstd" + sfx, rsi_d, rsi, tol);
      for (bool accumulate : {false, true}) {
        auto dy = random_pair<T>(rows, cols, strided, rng);
        auto dx = random_pair<T>(rows, cols, strided, rng);
        reference::rmsnorm_backward<T>(y.chv(), rsv.as_const(), dy.chv(), dx.hv(), accumulate);
        cuda::rmsnorm_backward<T>(y.cdv(), rsv_d.as_const(), dy.cdv(), dx.dv(), accumulate);
        check_close(std::string("rmsnorm_backward") + (accumulate ? " accumulate" : "") + sfx, dx.d, dx.h, tol);
      }
    }
}

TEST_CASE_TEMPLATE("softmax_rows and its backward: cuda matches reference, stable for large scores", T, float, double) {
  Rng rng(32);
  for (index_t cols : {5, 300})
    for (bool strided : {false, true}) {
      const index_t rows = 12;
      const std::string sfx = " cols " + std::to_string(cols) + (strided ? " strided" : "");
      const double tol = OpTol<T>::transcendental + reduction_tol<T>(cols);
      auto s = random_pair<T>(rows, cols, strided, rng, -8.0, 8.0);
      // Row 0: scores far beyond exp's range (a naive softmax gives inf / inf = NaN).
      for (index_t j = 0; j < cols; ++j) s.hv()(0, j) = T(1000 + 3 * j % 7);
      s.d = to_device(s.h);
      reference::softmax_rows<T>(s.hv(), T(0.37));
      cuda::softmax_rows<T>(s.dv(), T(0.37));
      check_close("softmax_rows" + sfx, s.d, s.h, tol);
      auto dp = random_pair<T>(rows, cols, strided, rng);
      auto ds = filled_pair<T>(rows, cols, strided, T(9));
      reference::softmax_rows_backward<T>(s.chv(), dp.chv(), ds.hv(), T(0.37));
      cuda::softmax_rows_backward<T>(s.cdv(), dp.cdv(), ds.dv(), T(0.37));
      check_close("softmax_rows_backward" + sfx, ds.d, ds.h, tol);
      // ds aliasing dp, as SelfAttention calls it.
      reference::softmax_rows_backward<T>(s.chv(), dp.chv(), dp.hv(), T(0.37));
      cuda::softmax_rows_backward<T>(s.cdv(), dp.cdv(), dp.dv(), T(0.37));
      check_close("softmax_rows_backward in place" + sfx, dp.d, dp.h, tol);
    }
}

TEST_CASE_TEMPLATE("sum_rows and dot: cuda matches reference", T, float, double) {
  Rng rng(33);
  for (bool strided : {false, true})
    for (bool accumulate : {false, true}) {
      const index_t rows = 300, cols = 7;
      auto x = random_pair<T>(rows, cols, strided, rng);
      auto out = random_mat<T>(1, cols, rng);
      auto out_d = to_device(out);
      std::vector<double> mag(cols);
      for (index_t j = 0; j < cols; ++j) {
        double s = accumulate ? std::abs(double(out(0, j))) : 0.0;
        for (index_t r = 0; r < rows; ++r) s += std::abs(double(x.hv()(r, j)));
        mag[j] = s;
      }
      reference::sum_rows<T>(x.chv(), VectorView<T>(out.data(), DynExtents<1>{cols}), accumulate);
      cuda::sum_rows<T>(x.cdv(), VectorView<T, device_space>(out_d.data(), DynExtents<1>{cols}), accumulate);
      check_close(std::string("sum_rows") + (accumulate ? " accumulate" : "") + (strided ? " strided" : ""), out_d, out,
                  reduction_tol<T>(rows), mag);
    }
  for (index_t n : {1, 1000, 300000})
    for (bool strided : {false, true}) {
      const index_t cols = n >= 1000 ? 100 : 1, rows = n / cols;
      auto a = random_pair<T>(rows, cols, strided, rng);
      auto b = random_pair<T>(rows, cols, strided, rng);
      const double want = reference::dot<T>(a.chv(), b.chv());
      const double got = cuda::dot<T>(a.cdv(), b.cdv());
      double mag = 0;
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) mag += std::abs(double(a.hv()(i, j)) * double(b.hv()(i, j)));
      const double ratio = std::abs(got - want) / (1e-12 * std::sqrt(double(n)) * mag);
      if (verbose()) std::printf("  dot n %-56lld worst err/tol %.3g\n", static_cast<long long>(n), ratio);
      INFO("dot n " << n << (strided ? " strided" : "") << ": gpu " << got << ", reference " << want);
      CHECK(ratio <= 1.0);
    }
  DMat<T> e(0, 3);
  CHECK(cuda::dot<T>(e.cview(), e.cview()) == 0.0);
}

// ---------------------------------------------------------------------------------------------
// Gather / scatter
// ---------------------------------------------------------------------------------------------
TEST_CASE_TEMPLATE("gather_rows and scatter_add_rows: cuda matches reference; bad ids throw ValueError", T, float,
                   double) {
  Rng rng(41);
  const index_t vocab = 11, width = 9, n = 40;
  DynTensor<std::int32_t, 1> ids(n);
  for (index_t r = 0; r < n; ++r) ids(r) = static_cast<std::int32_t>(rng.below(vocab));
  ids(3) = ids(7) = ids(19) = ids(30) = 4;  // repeated ids: at least 4 rows add into row 4
  auto ids_d = to_device(ids);
  std::vector<index_t> count(vocab, 0);
  for (index_t r = 0; r < n; ++r) ++count[ids(r)];
  for (bool strided : {false, true}) {
    const std::string sfx = strided ? " strided" : "";
    auto table = random_pair<T>(vocab, width, strided, rng);
    auto out = random_pair<T>(n, width, strided, rng);
    reference::gather_rows<T>(table.chv(), ids.cview(), T(1.5), out.hv());
    cuda::gather_rows<T>(table.cdv(), ids_d.cview(), T(1.5), out.dv());
    check_equal("gather_rows" + sfx, out.d, out.h);

    auto dout = random_pair<T>(n, width, strided, rng);
    auto dtable = random_pair<T>(vocab, width, strided, rng);
    // Magnitude: |initial| + sum over the rows that add into this one (padding: max(|x|, 1)).
    std::vector<double> mag(static_cast<std::size_t>(dtable.h.size()), 1.0);
    for (index_t v = 0; v < vocab; ++v)
      for (index_t j = 0; j < width; ++j) {
        double s = std::abs(double(dtable.hv()(v, j)));
        for (index_t r = 0; r < n; ++r)
          if (ids(r) == v) s += std::abs(1.5 * double(dout.hv()(r, j)));
        mag[static_cast<std::size_t>(&dtable.hv()(v, j) - dtable.h.data())] = std::max(s, 1e-30);
      }
    reference::scatter_add_rows<T>(dout.chv(), ids.cview(), T(1.5), dtable.hv());
    cuda::scatter_add_rows<T>(dout.cdv(), ids_d.cview(), T(1.5), dtable.dv());
    const index_t max_repeat = *std::max_element(count.begin(), count.end()) + 1;
    auto got = to_host(dtable.d);
    check_close<T>("scatter_add_rows (atomicAdd: order of repeated ids varies)" + sfx, std::span<const T>(got.span()),
                   std::span<const T>(dtable.h.span()), reduction_tol<T>(max_repeat), mag);
  }
  // Out-of-range ids (checked on the device): ValueError naming the op, the id, the row and the range;
  // nothing is written.
  for (std::int32_t bad : {11, -1}) {
    auto bad_ids = ids;
    bad_ids(5) = bad;
    bad_ids(9) = 12;
    auto bad_d = to_device(bad_ids);
    auto table = random_mat<T>(vocab, width, rng);
    auto table_d = to_device(table);
    auto out_d = to_device(filled<T, 2>({n, width}, T(3)));
    const std::string id_text = "id " + std::to_string(bad) + " at row 5";
    CHECK_THROWS_CONTAINING(cuda::gather_rows<T>(table_d.cview(), bad_d.cview(), T(1), out_d.view()), ValueError,
                            "gather_rows", id_text.c_str(), "[0, 11)");
    check_equal("gather_rows with a bad id leaves out unchanged", out_d, filled<T, 2>({n, width}, T(3)));
    CHECK_THROWS_CONTAINING(cuda::scatter_add_rows<T>(out_d.cview(), bad_d.cview(), T(1), table_d.view()), ValueError,
                            "scatter_add_rows", id_text.c_str(), "[0, 11)");
    check_equal("scatter_add_rows with a bad id leaves dtable unchanged", table_d, table);
  }
  // Shape errors are checked on the host, before any launch.
  DMat<T> t(vocab, width), o(n, width + 1);
  CHECK_THROWS_CONTAINING(cuda::gather_rows<T>(t.cview(), ids_d.cview(), T(1), o.view()), ShapeError, "gather_rows",
                          "width 9");
}

TEST_CASE("shape errors on cuda name the op, what was expected and what was found") {
  DMat<float> a34(3, 4), a43(4, 3), a35(3, 5);
  CHECK_THROWS_CONTAINING(cuda::gemm<float>(Trans::N, Trans::N, 1.0f, a34.cview(), a34.cview(), 0.0f, a34.view()),
                          ShapeError, "gemm", "[3, 4]");
  CHECK_THROWS_CONTAINING(cuda::copy<float>(a34.cview(), a43.view()), ShapeError, "copy", "[3, 4]", "[4, 3]");
  CHECK_THROWS_CONTAINING(cuda::add<float>(a34.cview(), a35.cview(), a34.view()), ShapeError, "add", "[3, 5]");
  // gemm needs non-overlapping rows (a BLAS leading dimension).
  MatrixView<float, device_space> overlap(a34.data(), DynExtents<2>{3, 4}, {2, 1});
  CHECK_THROWS_CONTAINING(cuda::gemm<float>(Trans::N, Trans::N, 1.0f, a34.cview(), a43.cview(), 0.0f, a34.view()),
                          ShapeError, "gemm");
  CHECK_THROWS_CONTAINING(cuda::gemm<float>(Trans::N, Trans::T, 1.0f, overlap.as_const(), a34.cview(), 0.0f,
                                            DMat<float>(3, 3).view()),
                          ShapeError, "rows must not overlap");
  DynTensor<float, 1, device_space> r2(2);
  CHECK_THROWS_CONTAINING(cuda::rmsnorm_forward<float>(a34.cview(), a34.view(), r2.view(), 1e-5f), ShapeError,
                          "rmsnorm_forward", "rstd", "[3]", "[2]");
}

// ---------------------------------------------------------------------------------------------
// Layers on the device vs their host twins
// ---------------------------------------------------------------------------------------------
namespace {

template <class L>
std::vector<std::pair<std::string, Param<typename L::scalar_type, typename L::backend_type::memory_space>*>> params_of(
    L& layer) {
  std::vector<std::pair<std::string, Param<typename L::scalar_type, typename L::backend_type::memory_space>*>> out;
  layer.for_each_parameter([&](const std::string& n, auto& p) { out.emplace_back(n, &p); });
  return out;
}

// Host twin: initialised with a seed, gradients pre-filled (backward accumulates into them); the
// device layer gets copies of both.
template <class LH, class LD>
void twin_parameters(LH& host, LD& dev, Rng& rng) {
  host.init(rng);
  auto hp = params_of(host);
  auto dp = params_of(dev);
  REQUIRE(hp.size() == dp.size());
  for (std::size_t i = 0; i < hp.size(); ++i) {
    REQUIRE(hp[i].first == dp[i].first);
    for (auto& g : hp[i].second->grad.span()) g = std::remove_reference_t<decltype(g)>(rng.uniform(-0.1, 0.1));
    dp[i].second->value = to_device(hp[i].second->value);
    dp[i].second->grad = to_device(hp[i].second->grad);
  }
}

// forward + backward on both; compares y, dx and every parameter gradient.
template <class LH, class LD, std::size_t R>
void compare_layer(const std::string& name, LH& host, LD& dev, const std::array<index_t, R>& xs, Rng& rng) {
  using T = typename LD::scalar_type;
  const double tol = OpTol<T>::layer;
  auto x = random_tensor<T, R>(xs, rng);
  auto y = filled<T, R>(xs, nan_v<T>);  // every layer here maps [.., width] to the same shape
  if constexpr (requires { LD::out_features; }) {
    auto ys = xs;
    ys[R - 1] = LD::out_features;
    y = filled<T, R>(ys, nan_v<T>);
  }
  auto dy = random_tensor<T, R>(y.shape(), rng);
  auto dx = random_tensor<T, R>(xs, rng);  // backward adds into dx
  auto x_d = to_device(x);
  auto y_d = to_device(y);
  auto dy_d = to_device(dy);
  auto dx_d = to_device(dx);
  typename LH::Cache ch;
  typename LH::Workspace wsh;
  typename LD::Cache cd;
  typename LD::Workspace wsd;
  host.forward(x.cview(), y.view(), ch, wsh);
  dev.forward(x_d.cview(), y_d.view(), cd, wsd);
  check_close_normwise(name + ": forward output", y_d, y, tol);
  host.backward(x.cview(), y.cview(), ch, dy.cview(), dx.view(), wsh);
  dev.backward(x_d.cview(), y_d.cview(), cd, dy_d.cview(), dx_d.view(), wsd);
  check_close_normwise(name + ": input gradient", dx_d, dx, tol);
  auto hp = params_of(host);
  auto dp = params_of(dev);
  for (std::size_t i = 0; i < hp.size(); ++i)
    check_close_normwise(name + ": grad " + hp[i].first, dp[i].second->grad, hp[i].second->grad, tol);
  cuda::synchronize();
}

template <class LD>
using host_twin = typename LD::template rebind<typename LD::scalar_type, reference>;

}  // namespace

TEST_CASE_TEMPLATE("Linear, SwiGlu, RmsNorm (both axes) on cuda match their reference twins", T, float, double) {
  Rng rng(51);
  {
    using LD = Linear<16, 24, true, T, cuda>;
    LD dev;
    host_twin<LD> host;
    twin_parameters(host, dev, rng);
    compare_layer<host_twin<LD>, LD, 2>("Linear 16->24 with bias", host, dev, {10, 16}, rng);
  }
  {
    using LD = Linear<16, 8, false, T, cuda>;
    LD dev;
    host_twin<LD> host;
    twin_parameters(host, dev, rng);
    compare_layer<host_twin<LD>, LD, 2>("Linear 16->8", host, dev, {7, 16}, rng);
  }
  {
    using LD = SwiGlu<16, 4, T, cuda>;
    LD dev;
    host_twin<LD> host;
    twin_parameters(host, dev, rng);
    compare_layer<host_twin<LD>, LD, 3>("SwiGlu 16", host, dev, {2, 5, 16}, rng);
  }
  {
    using LD = RmsNorm<NormAxis::hidden, T, cuda>;
    LD dev;
    host_twin<LD> host;
    compare_layer<host_twin<LD>, LD, 3>("RmsNorm hidden axis", host, dev, {2, 5, 16}, rng);
  }
  {
    using LD = RmsNorm<NormAxis::sequence, T, cuda>;
    LD dev;
    host_twin<LD> host;
    compare_layer<host_twin<LD>, LD, 3>("RmsNorm sequence axis", host, dev, {2, 5, 16}, rng);
  }
}

TEST_CASE_TEMPLATE("SelfAttention (with and without RoPE) and TokenMlp on cuda match their reference twins", T, float,
                   double) {
  Rng rng(52);
  RotaryEmbedding<8, T, reference> rope_h(16);
  RotaryEmbedding<8, T, cuda> rope_d(16);  // tables built on the host, copied to the device
  {
    using LD = SelfAttention<16, 2, T, cuda>;
    for (bool with_rope : {false, true}) {
      LD dev;
      host_twin<LD> host;
      twin_parameters(host, dev, rng);
      if (with_rope) {
        host.rope = &rope_h;
        dev.rope = &rope_d;
      }
      compare_layer<host_twin<LD>, LD, 3>(std::string("SelfAttention 16/2") + (with_rope ? " with RoPE" : ""), host, dev,
                                          {2, 7, 16}, rng);
    }
  }
  {
    using LD = TokenMlp<5, 4, T, cuda>;
    for (index_t chunk : {4096, 4}) {  // whole, and the SwiGLU in row blocks of at most 4 of the 32 rows
      LD dev;
      host_twin<LD> host;
      dev.chunk_rows = host.chunk_rows = chunk;
      twin_parameters(host, dev, rng);
      compare_layer<host_twin<LD>, LD, 3>("TokenMlp 5, chunk_rows " + std::to_string(chunk), host, dev, {2, 5, 16},
                                          rng);
    }
  }
}

TEST_CASE_TEMPLATE("Block and Stack (attention with RoPE, and token-MLP mixers) on cuda match their reference twins", T,
                   float, double) {
  Rng rng(53);
  RotaryEmbedding<8, T, reference> rope_h(16);
  RotaryEmbedding<8, T, cuda> rope_d(16);
  using AttBlock = Block<SelfAttention<16, 2, T, cuda>, SwiGlu<16, 4, T, cuda>>;
  using MlpBlock = Block<TokenMlp<6, 4, T, cuda>, SwiGlu<16, 4, T, cuda>>;
  {
    AttBlock dev;
    host_twin<AttBlock> host;
    twin_parameters(host, dev, rng);
    host.mixer.inner.rope = &rope_h;
    dev.mixer.inner.rope = &rope_d;
    compare_layer<host_twin<AttBlock>, AttBlock, 3>("Block<SelfAttention+RoPE, SwiGlu>", host, dev, {2, 6, 16}, rng);
  }
  {
    MlpBlock dev;
    host_twin<MlpBlock> host;
    twin_parameters(host, dev, rng);
    compare_layer<host_twin<MlpBlock>, MlpBlock, 3>("Block<TokenMlp, SwiGlu>", host, dev, {2, 6, 16}, rng);
  }
  {
    using LD = Stack<AttBlock, 2>;
    LD dev;
    host_twin<LD> host;
    twin_parameters(host, dev, rng);
    for (auto& l : host.layers) l.mixer.inner.rope = &rope_h;
    for (auto& l : dev.layers) l.mixer.inner.rope = &rope_d;
    compare_layer<host_twin<LD>, LD, 3>("Stack<Block<SelfAttention+RoPE, SwiGlu>, 2>", host, dev, {2, 6, 16}, rng);
  }
  {
    using LD = Stack<MlpBlock, 2>;
    LD dev;
    host_twin<LD> host;
    twin_parameters(host, dev, rng);
    compare_layer<host_twin<LD>, LD, 3>("Stack<Block<TokenMlp, SwiGlu>, 2>", host, dev, {2, 6, 16}, rng);
  }
}

TEST_CASE_TEMPLATE("Embedding on cuda (ids on the device) matches its reference twin", T, float, double) {
  Rng rng(54);
  using LD = Embedding<10, 16, T, cuda>;
  LD dev(T(4));
  host_twin<LD> host(T(4));
  twin_parameters(host, dev, rng);
  DynTensor<std::int32_t, 1> ids(23);
  for (index_t r = 0; r < 23; ++r) ids(r) = static_cast<std::int32_t>(rng.below(10));
  auto ids_d = to_device(ids);
  auto y = filled<T, 2>({23, 16}, nan_v<T>);
  auto y_d = to_device(y);
  typename host_twin<LD>::Cache ch;
  typename host_twin<LD>::Workspace wsh;
  typename LD::Cache cd;
  typename LD::Workspace wsd;
  host.forward(ids.cview(), y.view(), ch, wsh);
  dev.forward(ids_d.cview(), y_d.view(), cd, wsd);
  check_equal("Embedding forward", y_d, y);
  auto dy = random_tensor<T, 2>({23, 16}, rng);
  auto dy_d = to_device(dy);
  host.backward(ids.cview(), y.cview(), ch, dy.cview(), wsh);
  dev.backward(ids_d.cview(), y_d.cview(), cd, dy_d.cview(), wsd);
  check_close_normwise("Embedding weight gradient", dev.weight.grad, host.weight.grad, OpTol<T>::layer);
}

}  // namespace trm_cuda_tests
