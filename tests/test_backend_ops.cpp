// "Every op on every backend" (in the manner of ggml's test-backend-ops): trm::cpu is compared with
// trm::reference, the plain-loop oracle, on every op of the op set documented in
// trm/backend/reference.hpp, in float and in double, on odd sizes and strided sub-views. The oracle
// itself is pinned down by small hand-computed cases. Also: shape errors name what was expected
// and what was found, out-of-range ids throw ValueError, and cpu GEMMs are deterministic for a fixed
// thread count.
//
// Tolerances: OpTol / reduction_tol in tests/support/tolerances.hpp (reductions relative to the
// sum of the terms' magnitudes, elementwise ops, ops with exp, hand-computed values). Besides:
//  * copy, fill, scale, add, transpose_batched, gather_rows, scatter_add_rows perform the same single
//    IEEE operation (or none) per element on both backends: bit-identical results are required.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <trm/trm.hpp>
#include <vector>

#include "support/check_throws.hpp"
#include "support/tolerances.hpp"

using namespace trm;
using trm::test::OpTol;
using trm::test::reduction_tol;

namespace {

template <class T>
using Mat = DynTensor<T, 2>;

template <class T>
constexpr T nan_v = std::numeric_limits<T>::quiet_NaN();

template <class T>
Mat<T> random_mat(index_t r, index_t c, Rng& rng, double lo = -1.0, double hi = 1.0) {
  Mat<T> m(r, c);
  for (auto& v : m.span()) v = T(rng.uniform(lo, hi));
  return m;
}

template <class T>
Mat<T> filled(index_t r, index_t c, T value) {
  Mat<T> m(r, c);
  for (auto& v : m.span()) v = value;
  return m;
}

template <class V>
bool all_finite(const V& v) {
  for (index_t i = 0; i < v.extent(0); ++i)
    for (index_t j = 0; j < v.extent(1); ++j)
      if (!std::isfinite(double(v(i, j)))) return false;
  return true;
}

// Bitwise equality of two matrix views of the same shape (NaNs compare by payload, -0 != +0).
template <class A, class B>
bool bit_equal(const A& a, const B& b) {
  if (a.shape() != b.shape()) return false;
  for (index_t i = 0; i < a.extent(0); ++i)
    for (index_t j = 0; j < a.extent(1); ++j) {
      auto x = a(i, j);
      auto y = b(i, j);
      if (std::memcmp(&x, &y, sizeof x) != 0) return false;
    }
  return true;
}

// max |got - want| / max(|want|, floor): elementwise relative error.
template <class A, class B>
double max_rel_err(const A& got, const B& want, double floor = 1.0) {
  REQUIRE(got.shape() == want.shape());
  double worst = 0;
  for (index_t i = 0; i < got.extent(0); ++i)
    for (index_t j = 0; j < got.extent(1); ++j) {
      double g = double(got(i, j)), w = double(want(i, j));
      if (std::isnan(g) != std::isnan(w)) return std::numeric_limits<double>::infinity();
      if (std::isnan(g)) continue;
      worst = std::max(worst, std::abs(g - w) / std::max(std::abs(w), floor));
    }
  return worst;
}

// Row-wise normwise error: max over rows of max_j |got - want| / max_j |want| (row-wise ops).
template <class A, class B>
double max_row_err(const A& got, const B& want) {
  REQUIRE(got.shape() == want.shape());
  double worst = 0;
  for (index_t i = 0; i < got.extent(0); ++i) {
    double num = 0, den = std::numeric_limits<double>::min();
    for (index_t j = 0; j < got.extent(1); ++j) {
      double g = double(got(i, j)), w = double(want(i, j));
      if (!std::isfinite(g) || !std::isfinite(w)) return std::numeric_limits<double>::infinity();
      num = std::max(num, std::abs(g - w));
      den = std::max(den, std::abs(w));
    }
    worst = std::max(worst, num / den);
  }
  return worst;
}

// A strided window [r, c] at (r0, c0) inside a larger matrix filled with a sentinel; the parts
// outside the window let a test prove that an op touched nothing else.
template <class T>
struct Window {
  Mat<T> big;
  index_t r0, c0, r, c;
  Window(index_t r_, index_t c_, index_t r0_, index_t c0_, index_t extra_r, index_t extra_c, T sentinel)
      : big(filled<T>(r_ + r0_ + extra_r, c_ + c0_ + extra_c, sentinel)), r0(r0_), c0(c0_), r(r_), c(c_) {}
  MatrixView<T> view() { return columns(rows(big.view(), r0, r), c0, c); }
  CMatrixView<T> cview() const { return columns(rows(big.cview(), r0, r), c0, c); }
  bool outside_is(T sentinel) const {
    for (index_t i = 0; i < big.extent(0); ++i)
      for (index_t j = 0; j < big.extent(1); ++j) {
        bool inside = i >= r0 && i < r0 + r && j >= c0 && j < c0 + c;
        if (!inside && !(big(i, j) == sentinel)) return false;
      }
    return true;
  }
};

template <class T>
void fill_random(MatrixView<T> m, Rng& rng, double lo = -1.0, double hi = 1.0) {
  for (index_t i = 0; i < m.extent(0); ++i)
    for (index_t j = 0; j < m.extent(1); ++j) m(i, j) = T(rng.uniform(lo, hi));
}

template <class T>
void fill_value(MatrixView<T> m, T v) {
  for (index_t i = 0; i < m.extent(0); ++i)
    for (index_t j = 0; j < m.extent(1); ++j) m(i, j) = v;
}

}  // namespace

// =============================================================================================
// gemm
// =============================================================================================

namespace {
struct GemmShape {
  index_t m, n, k;
};
struct AlphaBeta {
  double alpha, beta;
};

// Runs C = alpha op(A) op(B) + beta C on both backends with the given views (A, B, C of the oracle
// and of cpu hold the same values) and checks cpu against the oracle. With beta == 0, C is
// pre-filled with NaN on both sides: the result must not depend on C's old contents.
template <class T>
void check_gemm_case(Trans ta, Trans tb, T alpha, T beta, CMatrixView<T> a, CMatrixView<T> b, MatrixView<T> c_ref,
                     MatrixView<T> c_cpu, const std::string& what) {
  const index_t m = c_ref.extent(0), n = c_ref.extent(1);
  const index_t k = ta == Trans::N ? a.extent(1) : a.extent(0);
  INFO(what);
  // Magnitude of the terms of every output element, in double.
  Mat<double> mag(m, n);
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j)
      mag(i, j) = trm::test::gemm_term_magnitude(ta, tb, double(alpha), double(beta), a, b, double(c_ref(i, j)), i, j, k);
  reference::gemm<T>(ta, tb, alpha, a, b, beta, c_ref);
  cpu::gemm<T>(ta, tb, alpha, a, b, beta, c_cpu);
  CHECK(all_finite(c_ref));
  CHECK(all_finite(c_cpu));
  double worst = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double d = std::abs(double(c_cpu(i, j)) - double(c_ref(i, j)));
      double e = d == 0 ? 0 : d / std::max(mag(i, j), std::numeric_limits<double>::min());
      worst = std::max(worst, e);
    }
  CHECK(worst <= reduction_tol<T>(k));
}

const char* tname(Trans t) { return t == Trans::N ? "N" : "T"; }
}  // namespace

TEST_CASE_TEMPLATE("gemm: cpu matches reference for all transposes, betas and odd sizes", T, float, double) {
  Rng rng(11);
  const GemmShape shapes[] = {{7, 13, 5}, {1, 17, 1}, {13, 1, 7}, {1, 1, 1}, {5, 7, 0},
                              {0, 3, 4},  {3, 0, 4},  {64, 33, 70}, {2, 300, 300}};
  const AlphaBeta alpha_betas[] = {{1.0, 0.0}, {1.0, 1.0}, {0.75, -1.5}, {-2.0, 0.0}};
  for (auto s : shapes)
    for (Trans ta : {Trans::N, Trans::T})
      for (Trans tb : {Trans::N, Trans::T})
        for (auto ab : alpha_betas) {
          auto a = ta == Trans::N ? random_mat<T>(s.m, s.k, rng) : random_mat<T>(s.k, s.m, rng);
          auto b = tb == Trans::N ? random_mat<T>(s.k, s.n, rng) : random_mat<T>(s.n, s.k, rng);
          auto c_ref = ab.beta == 0 ? filled<T>(s.m, s.n, nan_v<T>) : random_mat<T>(s.m, s.n, rng);
          auto c_cpu = c_ref;
          std::string what = "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                             " op=" + tname(ta) + tname(tb) + " alpha=" + std::to_string(ab.alpha) +
                             " beta=" + std::to_string(ab.beta);
          check_gemm_case<T>(ta, tb, T(ab.alpha), T(ab.beta), a.cview(), b.cview(), c_ref.view(), c_cpu.view(), what);
        }
}

TEST_CASE_TEMPLATE("gemm: strided sub-views from rows()/columns() for A, B and C", T, float, double) {
  Rng rng(12);
  const T sentinel = T(12345);
  const index_t m = 6, n = 5, k = 9;
  const AlphaBeta alpha_betas[] = {{1.0, 0.0}, {1.0, 1.0}, {-0.5, 2.0}};
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T})
      for (auto ab : alpha_betas) {
        // A and B: windows inside bigger random matrices (their row stride exceeds their width).
        Mat<T> abig = random_mat<T>(m + k + 3, m + k + 4, rng), bbig = random_mat<T>(n + k + 2, n + k + 5, rng);
        auto a = ta == Trans::N ? columns(rows(abig.cview(), 2, m), 3, k) : columns(rows(abig.cview(), 1, k), 2, m);
        auto b = tb == Trans::N ? columns(rows(bbig.cview(), 1, k), 4, n) : columns(rows(bbig.cview(), 2, n), 1, k);
        REQUIRE_FALSE(a.is_contiguous());
        REQUIRE_FALSE(b.is_contiguous());
        Window<T> c_ref(m, n, 2, 3, 1, 2, sentinel), c_cpu(m, n, 2, 3, 1, 2, sentinel);
        if (ab.beta == 0) {
          fill_value(c_ref.view(), nan_v<T>);
          fill_value(c_cpu.view(), nan_v<T>);
        } else {
          fill_random(c_ref.view(), rng);
          reference::copy<T>(c_ref.cview(), c_cpu.view());
        }
        std::string what = std::string("strided op=") + tname(ta) + tname(tb) + " beta=" + std::to_string(ab.beta);
        check_gemm_case<T>(ta, tb, T(ab.alpha), T(ab.beta), a, b, c_ref.view(), c_cpu.view(), what);
        CHECK(c_ref.outside_is(sentinel));
        CHECK(c_cpu.outside_is(sentinel));
      }
}

TEST_CASE_TEMPLATE("gemm: hand-computed 2x2", Bk, reference, cpu) {
  auto run = [](auto zero) {
    using T = decltype(zero);
    Mat<T> a(2, 2), b(2, 2), c(2, 2);
    a(0, 0) = 1, a(0, 1) = 2, a(1, 0) = 3, a(1, 1) = 4;
    b(0, 0) = 5, b(0, 1) = 6, b(1, 0) = 7, b(1, 1) = 8;
    fill_value(c.view(), nan_v<T>);
    Bk::template gemm<T>(Trans::N, Trans::N, T(1), a.cview(), b.cview(), T(0), c.view());
    CHECK(c(0, 0) == 19);
    CHECK(c(0, 1) == 22);
    CHECK(c(1, 0) == 43);
    CHECK(c(1, 1) == 50);
    Bk::template gemm<T>(Trans::T, Trans::N, T(1), a.cview(), b.cview(), T(0), c.view());  // A^T B
    CHECK(c(0, 0) == 26);
    CHECK(c(0, 1) == 30);
    CHECK(c(1, 0) == 38);
    CHECK(c(1, 1) == 44);
    Bk::template gemm<T>(Trans::N, Trans::T, T(1), a.cview(), b.cview(), T(0), c.view());  // A B^T
    CHECK(c(0, 0) == 17);
    CHECK(c(0, 1) == 23);
    CHECK(c(1, 0) == 39);
    CHECK(c(1, 1) == 53);
    Bk::template gemm<T>(Trans::T, Trans::T, T(1), a.cview(), b.cview(), T(0), c.view());  // A^T B^T = (BA)^T
    CHECK(c(0, 0) == 23);
    CHECK(c(0, 1) == 31);
    CHECK(c(1, 0) == 34);
    CHECK(c(1, 1) == 46);
    fill_value(c.view(), T(1));
    Bk::template gemm<T>(Trans::N, Trans::N, T(2), a.cview(), b.cview(), T(-3), c.view());  // 2 AB - 3
    CHECK(c(0, 0) == 35);
    CHECK(c(0, 1) == 41);
    CHECK(c(1, 0) == 83);
    CHECK(c(1, 1) == 97);
  };
  run(0.0f);
  run(0.0);
}

TEST_CASE("gemm: cpu is bit-for-bit deterministic for a fixed thread count") {
  const int saved = cpu::num_threads();
  cpu::set_num_threads(2);
  Rng rng(13);
  // Big enough that OpenBLAS splits the work between its threads.
  auto a = random_mat<float>(300, 257, rng), b = random_mat<float>(257, 311, rng);
  auto ad = random_mat<double>(311, 200, rng), bd = random_mat<double>(150, 311, rng);
  Mat<float> c0(300, 311);
  cpu::gemm<float>(Trans::N, Trans::N, 1.0f, a.cview(), b.cview(), 0.0f, c0.view());
  Mat<double> d0(200, 150);
  cpu::gemm<double>(Trans::T, Trans::T, 0.5, ad.cview(), bd.cview(), 0.0, d0.view());
  for (int rep = 0; rep < 3; ++rep) {
    Mat<float> c1(300, 311);
    cpu::gemm<float>(Trans::N, Trans::N, 1.0f, a.cview(), b.cview(), 0.0f, c1.view());
    CHECK(std::memcmp(c0.data(), c1.data(), c0.bytes()) == 0);
    Mat<double> d1(200, 150);
    cpu::gemm<double>(Trans::T, Trans::T, 0.5, ad.cview(), bd.cview(), 0.0, d1.view());
    CHECK(std::memcmp(d0.data(), d1.data(), d0.bytes()) == 0);
  }
  cpu::set_num_threads(saved);
}

TEST_CASE("cpu::set_num_threads round-trips through num_threads()") {
  // num_threads() reports the threads the GEMMs really use: OpenBLAS's pool, or Eigen's, which
  // exists only under OpenMP. Eigen without OpenMP is single-threaded whatever it is told.
#if defined(TRM_HAVE_CBLAS) || defined(_OPENMP)
  const int two = 2;
#else
  const int two = 1;
#endif
  const int saved = cpu::num_threads();
  CHECK(saved >= 1);
  cpu::set_num_threads(1);
  CHECK(cpu::num_threads() == 1);
  cpu::set_num_threads(2);
  CHECK(cpu::num_threads() == two);
  cpu::set_num_threads(1);
  CHECK(cpu::num_threads() == 1);
  cpu::set_num_threads(0);  // clamped to 1
  CHECK(cpu::num_threads() == 1);
  cpu::set_num_threads(saved);
  CHECK(cpu::num_threads() == (two == 2 ? saved : 1));
  reference::set_num_threads(4);
  CHECK(reference::num_threads() == 1);  // the oracle is single-threaded, whatever it is told
}

// =============================================================================================
// Elementwise ops: copy, fill, scale, axpy, add
// =============================================================================================

TEST_CASE_TEMPLATE("copy, fill, scale: bit-identical to reference, strided views included", T, float, double) {
  Rng rng(21);
  const T sentinel = T(-777);
  for (auto [r, c] : {std::pair<index_t, index_t>{7, 13}, {1, 1}, {1, 29}, {31, 1}, {0, 4}}) {
    // Contiguous source, strided destination, and the other way round.
    auto x = random_mat<T>(r, c, rng);
    Window<T> y_ref(r, c, 1, 2, 2, 3, sentinel), y_cpu(r, c, 1, 2, 2, 3, sentinel);
    reference::copy<T>(x.cview(), y_ref.view());
    cpu::copy<T>(x.cview(), y_cpu.view());
    CHECK(bit_equal(y_ref.cview(), x.cview()));
    CHECK(bit_equal(y_cpu.cview(), x.cview()));
    CHECK(y_cpu.outside_is(sentinel));
    Mat<T> back(r, c);
    cpu::copy<T>(y_cpu.cview(), back.view());
    CHECK(bit_equal(back.cview(), x.cview()));

    reference::fill<T>(y_ref.view(), T(0.375));
    cpu::fill<T>(y_cpu.view(), T(0.375));
    CHECK(bit_equal(y_ref.cview(), y_cpu.cview()));
    CHECK(y_cpu.outside_is(sentinel));
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) CHECK(y_cpu.cview()(i, j) == T(0.375));

    reference::copy<T>(x.cview(), y_ref.view());
    cpu::copy<T>(x.cview(), y_cpu.view());
    for (T alpha : {T(-1.7), T(0), T(3)}) {
      reference::scale<T>(y_ref.view(), alpha);
      cpu::scale<T>(y_cpu.view(), alpha);
      CHECK(bit_equal(y_ref.cview(), y_cpu.cview()));
      CHECK(y_cpu.outside_is(sentinel));
    }
  }
}

TEST_CASE_TEMPLATE("axpy and add: cpu matches reference; add's out may alias an input", T, float, double) {
  Rng rng(22);
  const T sentinel = T(4242);
  for (auto [r, c] : {std::pair<index_t, index_t>{7, 13}, {1, 17}, {23, 1}, {64, 65}}) {
    auto x = random_mat<T>(r, c, rng);
    Window<T> y_ref(r, c, 2, 1, 1, 2, sentinel), y_cpu(r, c, 2, 1, 1, 2, sentinel);
    fill_random(y_ref.view(), rng);
    reference::copy<T>(y_ref.cview(), y_cpu.view());
    for (T alpha : {T(1), T(-0.3), T(2.5)}) {
      reference::axpy<T>(alpha, x.cview(), y_ref.view());
      cpu::axpy<T>(alpha, x.cview(), y_cpu.view());
      CHECK(max_rel_err(y_cpu.cview(), y_ref.cview()) <= OpTol<T>::elementwise);
      CHECK(y_cpu.outside_is(sentinel));
    }

    auto a = random_mat<T>(r, c, rng), b = random_mat<T>(r, c, rng);
    Mat<T> out_ref = filled<T>(r, c, nan_v<T>), out_cpu = out_ref;
    reference::add<T>(a.cview(), b.cview(), out_ref.view());
    cpu::add<T>(a.cview(), b.cview(), out_cpu.view());
    CHECK(bit_equal(out_ref.cview(), out_cpu.cview()));
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) REQUIRE(out_cpu(i, j) == a(i, j) + b(i, j));
    // out aliases a, then b.
    Mat<T> a_ref = a, a_cpu = a;
    reference::add<T>(a_ref.cview(), b.cview(), a_ref.view());
    cpu::add<T>(a_cpu.cview(), b.cview(), a_cpu.view());
    CHECK(bit_equal(a_ref.cview(), out_ref.cview()));
    CHECK(bit_equal(a_cpu.cview(), out_ref.cview()));
    Mat<T> b_ref = b, b_cpu = b;
    reference::add<T>(a.cview(), b_ref.cview(), b_ref.view());
    cpu::add<T>(a.cview(), b_cpu.cview(), b_cpu.view());
    CHECK(bit_equal(b_ref.cview(), out_ref.cview()));
    CHECK(bit_equal(b_cpu.cview(), out_ref.cview()));
    // a + a into a
    Mat<T> aa = a;
    cpu::add<T>(aa.cview(), aa.cview(), aa.view());
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) REQUIRE(aa(i, j) == a(i, j) + a(i, j));
  }
}

// =============================================================================================
// transpose_batched
// =============================================================================================

TEST_CASE_TEMPLATE("transpose_batched: overwrite and accumulate, bit-identical, strided input", T, float, double) {
  Rng rng(31);
  for (auto [nb, m, n] : {std::tuple<index_t, index_t, index_t>{3, 5, 7}, {1, 1, 9}, {2, 40, 35}, {4, 33, 1}}) {
    DynTensor<T, 3> in(nb, m, n);
    for (auto& v : in.span()) v = T(rng.uniform(-1, 1));
    DynTensor<T, 3> out_ref(nb, n, m), out_cpu(nb, n, m);
    for (auto& v : out_ref.span()) v = nan_v<T>;
    out_cpu = out_ref;
    reference::transpose_batched<T>(in.cview(), out_ref.view(), false);
    cpu::transpose_batched<T>(in.cview(), out_cpu.view(), false);
    CHECK(std::memcmp(out_ref.data(), out_cpu.data(), out_ref.bytes()) == 0);
    bool ok = true;
    for (index_t b = 0; b < nb; ++b)
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < n; ++j) ok &= out_cpu(b, j, i) == in(b, i, j);
    CHECK(ok);

    // accumulate onto random contents
    for (auto& v : out_ref.span()) v = T(rng.uniform(-1, 1));
    out_cpu = out_ref;
    DynTensor<T, 3> before = out_ref;
    reference::transpose_batched<T>(in.cview(), out_ref.view(), true);
    cpu::transpose_batched<T>(in.cview(), out_cpu.view(), true);
    CHECK(std::memcmp(out_ref.data(), out_cpu.data(), out_ref.bytes()) == 0);
    ok = true;
    for (index_t b = 0; b < nb; ++b)
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < n; ++j) ok &= out_cpu(b, j, i) == before(b, j, i) + in(b, i, j);
    CHECK(ok);
  }
  // A strided input (every other batch, a window of rows and columns) and a strided output.
  DynTensor<T, 3> big(6, 9, 11);
  for (auto& v : big.span()) v = T(rng.uniform(-1, 1));
  Tensor3View<const T> in(big.data() + 1 * 11 + 2, DynExtents<3>{3, 5, 7}, {2 * 9 * 11, 11, 1});
  DynTensor<T, 3> obig_ref(3, 10, 8), obig_cpu(3, 10, 8);
  obig_ref.zero();
  obig_cpu.zero();
  Tensor3View<T> o_ref(obig_ref.data() + 8 + 1, DynExtents<3>{3, 7, 5}, {80, 8, 1});
  Tensor3View<T> o_cpu(obig_cpu.data() + 8 + 1, DynExtents<3>{3, 7, 5}, {80, 8, 1});
  reference::transpose_batched<T>(in, o_ref, false);
  cpu::transpose_batched<T>(in, o_cpu, false);
  CHECK(std::memcmp(obig_ref.data(), obig_cpu.data(), obig_ref.bytes()) == 0);
  CHECK(o_cpu(2, 6, 4) == in(2, 4, 6));
  CHECK(obig_cpu(0, 0, 0) == T(0));
}

// =============================================================================================
// swiglu
// =============================================================================================

TEST_CASE_TEMPLATE("swiglu_forward/backward: cpu matches reference, extreme gates included", T, float, double) {
  Rng rng(41);
  for (auto [r, inter] : {std::pair<index_t, index_t>{7, 13}, {1, 1}, {5, 256}}) {
    auto gu = random_mat<T>(r, 2 * inter, rng, -4.0, 4.0);
    // Saturating gates: silu(-100) -> -0, silu(100) -> 100; exp must not overflow into NaN.
    gu(0, 0) = T(-100);
    if (inter > 1) gu(0, 1) = T(100);
    if (r > 1) gu(1, 0) = T(0);
    Mat<T> out_ref = filled<T>(r, inter, nan_v<T>), out_cpu = out_ref;
    reference::swiglu_forward<T>(gu.cview(), out_ref.view());
    cpu::swiglu_forward<T>(gu.cview(), out_cpu.view());
    CHECK(all_finite(out_ref));
    CHECK(all_finite(out_cpu));
    CHECK(max_rel_err(out_cpu.cview(), out_ref.cview()) <= OpTol<T>::transcendental);

    auto dout = random_mat<T>(r, inter, rng);
    Mat<T> dgu_ref = filled<T>(r, 2 * inter, nan_v<T>), dgu_cpu = dgu_ref;  // overwritten, never read
    reference::swiglu_backward<T>(gu.cview(), dout.cview(), dgu_ref.view());
    cpu::swiglu_backward<T>(gu.cview(), dout.cview(), dgu_cpu.view());
    CHECK(all_finite(dgu_ref));
    CHECK(all_finite(dgu_cpu));
    CHECK(max_rel_err(dgu_cpu.cview(), dgu_ref.cview()) <= OpTol<T>::transcendental);

    // Strided (column windows of wider matrices), as the layers might hand them.
    Window<T> gw(r, 2 * inter, 1, 3, 0, 2, T(0)), ow(r, inter, 0, 1, 1, 1, T(9));
    reference::copy<T>(gu.cview(), gw.view());
    cpu::swiglu_forward<T>(gw.cview(), ow.view());
    CHECK(max_rel_err(ow.cview(), out_ref.cview()) <= OpTol<T>::transcendental);
    CHECK(ow.outside_is(T(9)));
  }
}

TEST_CASE_TEMPLATE("swiglu: hand-computed values", Bk, reference, cpu) {
  auto run = [](auto zero) {
    using T = decltype(zero);
    // gate_up = [g0, g1 | u0, u1] = [1, -2 | 3, 0.5]
    Mat<T> gu(1, 4), out(1, 2), dgu(1, 4), dout(1, 2);
    gu(0, 0) = 1, gu(0, 1) = -2, gu(0, 2) = 3, gu(0, 3) = T(0.5);
    Bk::template swiglu_forward<T>(gu.cview(), out.view());
    // silu(1) = 1 / (1 + e^-1) = 0.7310585786300049; silu(-2) = -2 / (1 + e^2) = -0.2384058440442351
    CHECK(out(0, 0) == doctest::Approx(3 * 0.7310585786300049).epsilon(OpTol<T>::hand));
    CHECK(out(0, 1) == doctest::Approx(0.5 * -0.2384058440442351).epsilon(OpTol<T>::hand));
    // Backward at g = 0, u = 2, dout = 1: d/dg silu(0) = 1/2, so dg = 2 * 1/2 = 1; du = silu(0) = 0.
    // At g = 1, u = -1, dout = 3: s = sigmoid(1) = 0.7310585786300049,
    // silu'(1) = s (1 + 1 - s) = 0.9276705118714869: dg = 3 * -1 * that; du = 3 * silu(1).
    gu(0, 0) = 0, gu(0, 1) = 1, gu(0, 2) = 2, gu(0, 3) = -1;
    dout(0, 0) = 1, dout(0, 1) = 3;
    Bk::template swiglu_backward<T>(gu.cview(), dout.cview(), dgu.view());
    CHECK(dgu(0, 0) == doctest::Approx(1.0).epsilon(OpTol<T>::hand));
    CHECK(dgu(0, 1) == doctest::Approx(-3 * 0.9276705118714869).epsilon(OpTol<T>::hand));
    CHECK(dgu(0, 2) == T(0));
    CHECK(dgu(0, 3) == doctest::Approx(3 * 0.7310585786300049).epsilon(OpTol<T>::hand));
  };
  run(0.0f);
  run(0.0);
}

// =============================================================================================
// rmsnorm
// =============================================================================================

TEST_CASE_TEMPLATE("rmsnorm_forward/backward: cpu matches reference (accumulate and overwrite)", T, float, double) {
  Rng rng(51);
  for (auto [r, n] : {std::pair<index_t, index_t>{6, 37}, {1, 1}, {3, 512}, {9, 2}}) {
    auto x = random_mat<T>(r, n, rng);
    // Rows of very different scales: statistics must be relative, and eps matters for tiny rows.
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < n; ++j) x(i, j) *= T(std::pow(10.0, double(i % 7) - 3.0));
    const T eps = T(1e-5);
    Mat<T> y_ref = filled<T>(r, n, nan_v<T>), y_cpu = y_ref;
    DynTensor<T, 1> rs_ref(r), rs_cpu(r);
    reference::rmsnorm_forward<T>(x.cview(), y_ref.view(), rs_ref.view(), eps);
    cpu::rmsnorm_forward<T>(x.cview(), y_cpu.view(), rs_cpu.view(), eps);
    CHECK(max_row_err(y_cpu.cview(), y_ref.cview()) <= reduction_tol<T>(n));
    double rs_err = 0;
    for (index_t i = 0; i < r; ++i) rs_err = std::max(rs_err, std::abs(double(rs_cpu(i)) / double(rs_ref(i)) - 1));
    CHECK(rs_err <= reduction_tol<T>(n));

    // In place (y aliases x), as ResidualNorm uses it.
    Mat<T> xin = x;
    DynTensor<T, 1> rs_in(r);
    cpu::rmsnorm_forward<T>(xin.cview(), xin.view(), rs_in.view(), eps);
    CHECK(bit_equal(xin.cview(), y_cpu.cview()));

    auto dy = random_mat<T>(r, n, rng);
    // overwrite: dx pre-filled with NaN must not leak in
    Mat<T> dx_ref = filled<T>(r, n, nan_v<T>), dx_cpu = dx_ref;
    reference::rmsnorm_backward<T>(y_ref.cview(), rs_ref.cview(), dy.cview(), dx_ref.view(), false);
    cpu::rmsnorm_backward<T>(y_ref.cview(), rs_ref.cview(), dy.cview(), dx_cpu.view(), false);
    CHECK(all_finite(dx_cpu));
    CHECK(max_row_err(dx_cpu.cview(), dx_ref.cview()) <= reduction_tol<T>(n));
    // accumulate onto random contents
    auto base = random_mat<T>(r, n, rng);
    Mat<T> acc_ref = base, acc_cpu = base;
    reference::rmsnorm_backward<T>(y_ref.cview(), rs_ref.cview(), dy.cview(), acc_ref.view(), true);
    cpu::rmsnorm_backward<T>(y_ref.cview(), rs_ref.cview(), dy.cview(), acc_cpu.view(), true);
    double worst = 0;  // relative to the magnitude of the increment and of the old contents
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < n; ++j) {
        double scale_ij = std::abs(double(base(i, j))) + std::abs(double(dx_ref(i, j)));
        double rowmax = 0;
        for (index_t q = 0; q < n; ++q) rowmax = std::max(rowmax, std::abs(double(dx_ref(i, q))));
        worst = std::max(worst, std::abs(double(acc_cpu(i, j)) - double(acc_ref(i, j))) /
                                    std::max({scale_ij, rowmax, 1e-30}));
      }
    CHECK(worst <= reduction_tol<T>(n));
  }
}

TEST_CASE_TEMPLATE("rmsnorm: hand-computed [3, 4]", Bk, reference, cpu) {
  auto run = [](auto zero) {
    using T = decltype(zero);
    Mat<T> x(1, 2), y(1, 2);
    x(0, 0) = 3, x(0, 1) = 4;
    DynTensor<T, 1> rs(1);
    Bk::template rmsnorm_forward<T>(x.cview(), y.view(), rs.view(), T(1e-5));
    // mean(x^2) = (9 + 16) / 2 = 12.5
    const double rstd = 1.0 / std::sqrt(12.5 + double(T(1e-5)));
    CHECK(rs(0) == doctest::Approx(rstd).epsilon(OpTol<T>::hand));
    CHECK(y(0, 0) == doctest::Approx(3 * rstd).epsilon(OpTol<T>::hand));
    CHECK(y(0, 1) == doctest::Approx(4 * rstd).epsilon(OpTol<T>::hand));
    // dx = rstd (dy - y mean(dy y)); for dy = y: mean(y^2) = 12.5 rstd^2, dx = rstd y (1 - 12.5 rstd^2)
    Mat<T> dx(1, 2);
    Bk::template rmsnorm_backward<T>(y.cview(), rs.cview(), y.cview(), dx.view(), false);
    const double f = rstd * (1 - 12.5 * rstd * rstd);  // ~ 1e-5 / 12.5 / sqrt(12.5): tiny, not 0
    CHECK(dx(0, 0) == doctest::Approx(3 * rstd * f).epsilon(std::is_same_v<T, float> ? 0.05 : 1e-8));
  };
  run(0.0f);
  run(0.0);
}

// =============================================================================================
// softmax
// =============================================================================================

TEST_CASE_TEMPLATE("softmax_rows and its backward: cpu matches reference, stable for large inputs", T, float,
                   double) {
  Rng rng(61);
  for (T scale : {T(1), T(0.7), T(-1.3), T(0.125)}) {
    for (auto [r, c] : {std::pair<index_t, index_t>{7, 13}, {1, 1}, {4, 97}, {3, 2}}) {
      auto s = random_mat<T>(r, c, rng, -5.0, 5.0);
      // Large values: exp(scale * 1000) overflows unless the row maximum (minimum for scale < 0) is
      // subtracted first.
      for (index_t j = 0; j < c; ++j) s(0, j) = T(1000 + j % 3);
      if (r > 1)
        for (index_t j = 0; j < c; ++j) s(1, j) = T(-2000 - 0.5 * double(j % 5));
      if (r > 2)
        for (index_t j = 0; j < c; ++j) s(2, j) = T(42);  // uniform row
      Mat<T> p_ref = s, p_cpu = s;
      reference::softmax_rows<T>(p_ref.view(), scale);
      cpu::softmax_rows<T>(p_cpu.view(), scale);
      REQUIRE(all_finite(p_ref));
      REQUIRE(all_finite(p_cpu));
      CHECK(max_row_err(p_cpu.cview(), p_ref.cview()) <= OpTol<T>::transcendental * std::sqrt(double(c)));
      for (index_t i = 0; i < r; ++i) {
        double sum = 0;
        for (index_t j = 0; j < c; ++j) sum += double(p_cpu(i, j));
        CHECK(sum == doctest::Approx(1.0).epsilon(reduction_tol<T>(c)));
      }
      if (r > 2) CHECK(p_cpu(2, 0) == doctest::Approx(1.0 / double(c)).epsilon(OpTol<T>::hand));
      if (c == 2) {  // row 0 = [1000, 1001]: p = [1, e^d] / (1 + e^d), d = scale*1001 - scale*1000
        // d from the products rounded to T as the ops form them: in float, scale * 1000 carries an
        // absolute rounding error of ~3e-5, which is the conditioning of the input, not an op error.
        double e = std::exp(double(T(scale * T(1001))) - double(T(scale * T(1000))));
        CHECK(p_cpu(0, 1) == doctest::Approx(e / (1 + e)).epsilon(OpTol<T>::transcendental));
      }

      auto dp = random_mat<T>(r, c, rng);
      Mat<T> ds_ref = filled<T>(r, c, nan_v<T>), ds_cpu = ds_ref;
      reference::softmax_rows_backward<T>(p_ref.cview(), dp.cview(), ds_ref.view(), scale);
      cpu::softmax_rows_backward<T>(p_ref.cview(), dp.cview(), ds_cpu.view(), scale);
      CHECK(all_finite(ds_cpu));
      // ds = scale p (dp - <dp, p>): relative to |scale| max|dp| (the row's terms are <= that).
      double worst = 0;
      for (index_t i = 0; i < r; ++i)
        for (index_t j = 0; j < c; ++j)
          worst = std::max(worst, std::abs(double(ds_cpu(i, j)) - double(ds_ref(i, j))) / std::abs(double(scale)));
      CHECK(worst <= reduction_tol<T>(c));
      // ds may alias dp.
      Mat<T> alias = dp;
      cpu::softmax_rows_backward<T>(p_ref.cview(), alias.cview(), alias.view(), scale);
      CHECK(bit_equal(alias.cview(), ds_cpu.cview()));
      Mat<T> alias_ref = dp;
      reference::softmax_rows_backward<T>(p_ref.cview(), alias_ref.cview(), alias_ref.view(), scale);
      CHECK(bit_equal(alias_ref.cview(), ds_ref.cview()));
    }
  }
}

TEST_CASE_TEMPLATE("softmax: hand-computed [0, ln 3] -> [0.25, 0.75]", Bk, reference, cpu) {
  auto run = [](auto zero) {
    using T = decltype(zero);
    Mat<T> s(2, 2);
    s(0, 0) = 0, s(0, 1) = T(std::log(3.0));
    s(1, 0) = 0, s(1, 1) = T(2 * std::log(3.0));  // with scale 1/2: the same
    Mat<T> p = s;
    Bk::template softmax_rows<T>(rows(p.view(), 0, 1), T(1));
    Bk::template softmax_rows<T>(rows(p.view(), 1, 1), T(0.5));
    for (index_t i = 0; i < 2; ++i) {
      CHECK(p(i, 0) == doctest::Approx(0.25).epsilon(OpTol<T>::hand));
      CHECK(p(i, 1) == doctest::Approx(0.75).epsilon(OpTol<T>::hand));
    }
    // Negative scale flips the preference: softmax(-[0, ln 3]) = [0.75, 0.25].
    Mat<T> q = s;
    Bk::template softmax_rows<T>(rows(q.view(), 0, 1), T(-1));
    CHECK(q(0, 0) == doctest::Approx(0.75).epsilon(OpTol<T>::hand));
    // Backward with dp = e_1: ds = scale p (e_1 - p_1) = [-0.25*0.75, 0.75*0.25].
    Mat<T> dp(1, 2), ds(1, 2);
    dp(0, 0) = 0, dp(0, 1) = 1;
    Bk::template softmax_rows_backward<T>(rows(p.cview(), 0, 1), dp.cview(), ds.view(), T(1));
    CHECK(ds(0, 0) == doctest::Approx(-0.1875).epsilon(OpTol<T>::hand));
    CHECK(ds(0, 1) == doctest::Approx(0.1875).epsilon(OpTol<T>::hand));
  };
  run(0.0f);
  run(0.0);
}

// =============================================================================================
// rope
// =============================================================================================

TEST_CASE_TEMPLATE("rope forward and transpose: cpu matches reference on strided head views", T, float, double) {
  Rng rng(71);
  for (auto [seq, d] : {std::pair<index_t, index_t>{5, 8}, {1, 2}, {17, 64}}) {
    // Arbitrary tables (not consistent rotations): every cos/sin index is exercised.
    auto cs = random_mat<T>(seq, d, rng), sn = random_mat<T>(seq, d, rng);
    // x: head 1 of a [seq, 3 * d] qkv-like matrix.
    Mat<T> qkv = random_mat<T>(seq, 3 * d, rng);
    for (bool transpose : {false, true}) {
      Mat<T> q_ref = qkv, q_cpu = qkv;
      auto x_ref = columns(q_ref.view(), d, d), x_cpu = columns(q_cpu.view(), d, d);
      reference::rope<T>(x_ref, cs.cview(), sn.cview(), transpose);
      cpu::rope<T>(x_cpu, cs.cview(), sn.cview(), transpose);
      CHECK(max_rel_err(q_cpu.cview(), q_ref.cview()) <= OpTol<T>::elementwise);
      // The other heads are untouched.
      CHECK(bit_equal(columns(q_cpu.cview(), 0, d), columns(qkv.cview(), 0, d)));
      CHECK(bit_equal(columns(q_cpu.cview(), 2 * d, d), columns(qkv.cview(), 2 * d, d)));
    }
    // With consistent tables (angles duplicated over the halves), transpose undoes forward.
    Mat<T> c2(seq, d), s2(seq, d);
    for (index_t p = 0; p < seq; ++p)
      for (index_t i = 0; i < d / 2; ++i) {
        double ang = rng.uniform(-3, 3);
        c2(p, i) = c2(p, i + d / 2) = T(std::cos(ang));
        s2(p, i) = s2(p, i + d / 2) = T(std::sin(ang));
      }
    Mat<T> x = random_mat<T>(seq, d, rng), y = x;
    cpu::rope<T>(y.view(), c2.cview(), s2.cview(), false);
    cpu::rope<T>(y.view(), c2.cview(), s2.cview(), true);
    CHECK(max_rel_err(y.cview(), x.cview()) <= 4 * OpTol<T>::elementwise);
  }
}

// =============================================================================================
// gather_rows, scatter_add_rows
// =============================================================================================

TEST_CASE_TEMPLATE("gather_rows / scatter_add_rows: repeated ids, bit-identical", T, float, double) {
  Rng rng(81);
  auto table = random_mat<T>(6, 5, rng);
  std::vector<std::int32_t> ids{3, 0, 3, 5, 1, 3, 3};
  CVectorView<std::int32_t> idv(ids.data(), DynExtents<1>{index_t(ids.size())});
  const index_t r = index_t(ids.size());
  for (T scale : {T(1), T(2.5), T(-0.5)}) {
    Mat<T> out_ref = filled<T>(r, 5, nan_v<T>), out_cpu = out_ref;
    reference::gather_rows<T>(table.cview(), idv, scale, out_ref.view());
    cpu::gather_rows<T>(table.cview(), idv, scale, out_cpu.view());
    CHECK(bit_equal(out_ref.cview(), out_cpu.cview()));
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < 5; ++j) REQUIRE(out_cpu(i, j) == scale * table(ids[std::size_t(i)], j));

    auto dout = random_mat<T>(r, 5, rng);
    auto dt0 = random_mat<T>(6, 5, rng);
    Mat<T> dt_ref = dt0, dt_cpu = dt0;
    reference::scatter_add_rows<T>(dout.cview(), idv, scale, dt_ref.view());
    cpu::scatter_add_rows<T>(dout.cview(), idv, scale, dt_cpu.view());
    CHECK(max_rel_err(dt_cpu.cview(), dt_ref.cview()) <= OpTol<T>::elementwise);
    // Row 3 received four contributions, row 2 and 4 none.
    for (index_t j = 0; j < 5; ++j) {
      CHECK(dt_cpu(2, j) == dt0(2, j));
      CHECK(dt_cpu(4, j) == dt0(4, j));
      double want = double(dt0(3, j)) + double(scale) * (double(dout(0, j)) + double(dout(2, j)) +
                                                          double(dout(5, j)) + double(dout(6, j)));
      CHECK(double(dt_cpu(3, j)) == doctest::Approx(want).epsilon(4 * OpTol<T>::elementwise));
    }
  }
  // Strided table window and output window.
  Window<T> tw(6, 5, 1, 2, 1, 1, T(0)), ow(r, 5, 2, 1, 0, 3, T(-1));
  reference::copy<T>(table.cview(), tw.view());
  cpu::gather_rows<T>(tw.cview(), idv, T(1), ow.view());
  for (index_t i = 0; i < r; ++i)
    for (index_t j = 0; j < 5; ++j) REQUIRE(ow.cview()(i, j) == table(ids[std::size_t(i)], j));
  CHECK(ow.outside_is(T(-1)));
}

TEST_CASE_TEMPLATE("gather_rows / scatter_add_rows: out-of-range ids throw ValueError", Bk, reference, cpu) {
  Mat<float> table(4, 3), out(2, 3), dout(2, 3);
  table.zero();
  dout.zero();
  for (std::vector<std::int32_t> bad : {std::vector<std::int32_t>{0, 4}, {-1, 0}, {1, 1000000}}) {
    CVectorView<std::int32_t> idv(bad.data(), DynExtents<1>{2});
    const std::string id = std::to_string(bad[0] == 0 || bad[0] == 1 ? bad[1] : bad[0]);
    CHECK_THROWS_CONTAINING(Bk::template gather_rows<float>(table.cview(), idv, 1.0f, out.view()), ValueError,
                            "gather_rows", "out of range [0, 4)", id.c_str());
    CHECK_THROWS_CONTAINING(Bk::template scatter_add_rows<float>(dout.cview(), idv, 1.0f, table.view()), ValueError,
                            "scatter_add_rows", "out of range [0, 4)", id.c_str());
  }
}

// =============================================================================================
// sum_rows, dot
// =============================================================================================

TEST_CASE_TEMPLATE("sum_rows and dot: cpu matches reference", T, float, double) {
  Rng rng(91);
  for (auto [r, c] : {std::pair<index_t, index_t>{37, 11}, {1, 7}, {300, 1}, {0, 3}}) {
    auto x = random_mat<T>(r, c, rng);
    DynTensor<T, 1> s_ref(c), s_cpu(c);
    for (index_t j = 0; j < c; ++j) s_ref(j) = s_cpu(j) = nan_v<T>;  // overwritten, never read
    reference::sum_rows<T>(x.cview(), s_ref.view(), false);
    cpu::sum_rows<T>(x.cview(), s_cpu.view(), false);
    std::vector<double> mag(std::size_t(c), 0.0);
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) mag[std::size_t(j)] += std::abs(double(x(i, j)));
    double worst = 0;
    for (index_t j = 0; j < c; ++j) {
      REQUIRE(std::isfinite(double(s_cpu(j))));
      worst = std::max(worst, std::abs(double(s_cpu(j)) - double(s_ref(j))) / std::max(mag[std::size_t(j)], 1e-30));
    }
    CHECK(worst <= reduction_tol<T>(r));
    // accumulate
    DynTensor<T, 1> a_ref(c), a_cpu(c);
    for (index_t j = 0; j < c; ++j) a_ref(j) = a_cpu(j) = T(10 + j);
    reference::sum_rows<T>(x.cview(), a_ref.view(), true);
    cpu::sum_rows<T>(x.cview(), a_cpu.view(), true);
    worst = 0;
    for (index_t j = 0; j < c; ++j)
      worst = std::max(worst, std::abs(double(a_cpu(j)) - double(a_ref(j))) / (mag[std::size_t(j)] + 10 + double(j)));
    CHECK(worst <= reduction_tol<T>(r));

    auto y = random_mat<T>(r, c, rng);
    double d_ref = reference::dot<T>(x.cview(), y.cview()), d_cpu = cpu::dot<T>(x.cview(), y.cview());
    double dmag = 0;
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) dmag += std::abs(double(x(i, j)) * double(y(i, j)));
    CHECK(std::abs(d_cpu - d_ref) <= reduction_tol<T>(r * c) * std::max(dmag, 1e-30));
  }
  // Strided views; hand-computed: sum of rows of [[1, 2], [3, 4]] = [4, 6]; dot with itself = 30.
  Window<T> w(2, 2, 1, 1, 1, 1, T(100));
  auto wv = w.view();
  wv(0, 0) = 1, wv(0, 1) = 2, wv(1, 0) = 3, wv(1, 1) = 4;
  DynTensor<T, 1> s(2);
  cpu::sum_rows<T>(w.cview(), s.view(), false);
  CHECK(s(0) == 4);
  CHECK(s(1) == 6);
  reference::sum_rows<T>(w.cview(), s.view(), false);
  CHECK(s(0) == 4);
  CHECK(s(1) == 6);
  CHECK(cpu::dot<T>(w.cview(), w.cview()) == 30);
  CHECK(reference::dot<T>(w.cview(), w.cview()) == 30);
}

// =============================================================================================
// Large inputs: the cpu backend splits elementwise and row-wise ops between threads above a size
// threshold. Those paths must match the oracle too, and give bit-identical results for 1 and 2
// threads (every element or row is computed by the same code whichever thread runs it).
// =============================================================================================

TEST_CASE_TEMPLATE("large inputs (threaded paths): cpu matches reference, bit-identical for 1 and 2 threads", T,
                   float, double) {
  Rng rng(111);
  const index_t R = 300, C = 257, inter = 129;  // 77k elements per matrix
  auto x = random_mat<T>(R, C, rng), y0 = random_mat<T>(R, C, rng), dy = random_mat<T>(R, C, rng);
  auto gu = random_mat<T>(R, 2 * inter, rng, -4, 4), dh = random_mat<T>(R, inter, rng);
  DynTensor<T, 3> t3(4, 150, 130);
  for (auto& v : t3.span()) v = T(rng.uniform(-1, 1));
  auto xr = random_mat<T>(600, 64, rng), cs = random_mat<T>(600, 64, rng), sn = random_mat<T>(600, 64, rng);

  struct Out {
    Mat<T> add, axpy, scale, copy, swf, swb, rmsy, rmsdx, sm, smb, rope;
    DynTensor<T, 1> rstd;
    DynTensor<T, 3> tr;
  };
  auto run = [&](auto backend) {
    using Bk = decltype(backend);
    Out o;
    o.add = filled<T>(R, C, nan_v<T>);
    Bk::template add<T>(x.cview(), y0.cview(), o.add.view());
    o.axpy = y0;
    Bk::template axpy<T>(T(0.3), x.cview(), o.axpy.view());
    o.scale = x;
    Bk::template scale<T>(o.scale.view(), T(-1.25));
    o.copy = filled<T>(R, C, nan_v<T>);
    Bk::template copy<T>(x.cview(), o.copy.view());
    o.swf = filled<T>(R, inter, nan_v<T>);
    Bk::template swiglu_forward<T>(gu.cview(), o.swf.view());
    o.swb = filled<T>(R, 2 * inter, nan_v<T>);
    Bk::template swiglu_backward<T>(gu.cview(), dh.cview(), o.swb.view());
    o.rmsy = filled<T>(R, C, nan_v<T>);
    o.rstd.resize(R);
    Bk::template rmsnorm_forward<T>(x.cview(), o.rmsy.view(), o.rstd.view(), T(1e-5));
    o.rmsdx = y0;
    Bk::template rmsnorm_backward<T>(o.rmsy.cview(), o.rstd.cview(), dy.cview(), o.rmsdx.view(), true);
    o.sm = x;
    Bk::template softmax_rows<T>(o.sm.view(), T(3));
    o.smb = filled<T>(R, C, nan_v<T>);
    Bk::template softmax_rows_backward<T>(o.sm.cview(), dy.cview(), o.smb.view(), T(3));
    o.rope = xr;
    Bk::template rope<T>(o.rope.view(), cs.cview(), sn.cview(), false);
    o.tr.resize(4, 130, 150);
    Bk::template transpose_batched<T>(t3.cview(), o.tr.view(), false);
    return o;
  };
  const int saved = cpu::num_threads();
  Out ref = run(reference{});
  cpu::set_num_threads(1);
  Out one = run(cpu{});
  cpu::set_num_threads(2);
  Out two = run(cpu{});
  cpu::set_num_threads(saved);

  const std::pair<const char*, Mat<T> Out::*> mats[] = {
      {"add", &Out::add},   {"axpy", &Out::axpy},   {"scale", &Out::scale}, {"copy", &Out::copy},
      {"swiglu_forward", &Out::swf}, {"swiglu_backward", &Out::swb}, {"rmsnorm_forward", &Out::rmsy},
      {"rmsnorm_backward", &Out::rmsdx}, {"softmax_rows", &Out::sm}, {"softmax_rows_backward", &Out::smb},
      {"rope", &Out::rope}};
  // Not a structured binding: INFO captures `name` in a lambda, which clang before 16 refuses for
  // a binding (the sanitizer builds of tools/sanitize.sh use clang).
  for (const auto& entry : mats) {
    const char* name = entry.first;
    const auto member = entry.second;
    INFO(name);
    CHECK(bit_equal((one.*member).cview(), (two.*member).cview()));
    CHECK(all_finite((two.*member).cview()));
    // Row-wise relative error: covers the elementwise bounds and the row reductions (k = C).
    CHECK(max_row_err((two.*member).cview(), (ref.*member).cview()) <= reduction_tol<T>(C));
  }
  CHECK(std::memcmp(one.tr.data(), two.tr.data(), one.tr.bytes()) == 0);
  CHECK(std::memcmp(ref.tr.data(), two.tr.data(), ref.tr.bytes()) == 0);
  CHECK(std::memcmp(one.rstd.data(), two.rstd.data(), one.rstd.bytes()) == 0);
}

// =============================================================================================
// Shape errors: each op names the expected and the found shape
// =============================================================================================

TEST_CASE_TEMPLATE("every op rejects wrong shapes with a ShapeError naming both shapes", Bk, reference, cpu) {
  using T = float;
  Mat<T> a34(3, 4), b46(4, 6), b56(5, 6), c36(3, 6), c35(3, 5), a43(4, 3);
  for (auto* m : {&a34, &b46, &b56, &c36, &c35, &a43}) m->zero();

  // gemm: inner sizes differ; C of the wrong shape (also with transposes).
  CHECK_THROWS_CONTAINING(Bk::template gemm<T>(Trans::N, Trans::N, 1, a34.cview(), b56.cview(), 0, c36.view()),
                          ShapeError, "gemm", "[3, 4]", "[5, 6]");
  CHECK_THROWS_CONTAINING(Bk::template gemm<T>(Trans::N, Trans::N, 1, a34.cview(), b46.cview(), 0, c35.view()),
                          ShapeError, "gemm", "expected C of shape [3, 6]", "found C [3, 5]");
  CHECK_THROWS_CONTAINING(Bk::template gemm<T>(Trans::T, Trans::N, 1, a43.cview(), b46.cview(), 0, c35.view()),
                          ShapeError, "[3, 6]", "[3, 5]");
  CHECK_THROWS_CONTAINING(Bk::template gemm<T>(Trans::N, Trans::T, 1, a34.cview(), b46.cview(), 0, c36.view()),
                          ShapeError, "op(B) is [6, 4]", "[3, 4]");
  // gemm with a column stride != 1 (a transposed view) is rejected rather than mis-read.
  CMatrixView<T> a_t(a34.data(), DynExtents<2>{4, 3}, {1, 4});
  CHECK_THROWS_WITH_AS(Bk::template gemm<T>(Trans::N, Trans::N, 1, a_t, c36.cview(), 0, b46.view()),
                       doctest::Contains("unit column stride"), ShapeError);

  // copy / axpy / add
  CHECK_THROWS_CONTAINING(Bk::template copy<T>(a34.cview(), a43.view()), ShapeError, "copy", "expected [3, 4]",
                          "found [4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template axpy<T>(1, a34.cview(), a43.view()), ShapeError, "axpy", "[3, 4]", "[4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template add<T>(a34.cview(), a43.cview(), a34.view()), ShapeError, "add", "[3, 4]",
                          "[4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template add<T>(a34.cview(), a34.cview(), c35.view()), ShapeError, "add", "out",
                          "[3, 4]", "[3, 5]");

  // transpose_batched
  DynTensor<T, 3> t234(2, 3, 4), t243(2, 4, 3);
  t234.zero();
  CHECK_THROWS_CONTAINING(Bk::template transpose_batched<T>(t234.cview(), t234.view(), false), ShapeError,
                          "transpose_batched", "expected out of shape [2, 4, 3]", "found [2, 3, 4]");
  CHECK_NOTHROW(Bk::template transpose_batched<T>(t234.cview(), t243.view(), false));

  // swiglu: out must be [rows, gate_up width / 2]
  Mat<T> gu28(2, 8), o23(2, 3), o34(3, 4), o24(2, 4), g26(2, 6);
  for (auto* m : {&gu28, &o23, &o34, &o24, &g26}) m->zero();
  CHECK_THROWS_CONTAINING(Bk::template swiglu_forward<T>(gu28.cview(), o23.view()), ShapeError, "swiglu",
                          "expected [2, 4]", "found [2, 3]");
  CHECK_THROWS_CONTAINING(Bk::template swiglu_forward<T>(gu28.cview(), o34.view()), ShapeError, "expected [2, 4]",
                          "found [3, 4]");
  CHECK_THROWS_CONTAINING(Bk::template swiglu_backward<T>(gu28.cview(), o23.cview(), gu28.view()), ShapeError,
                          "dout", "expected [2, 4]", "found [2, 3]");
  CHECK_THROWS_CONTAINING(Bk::template swiglu_backward<T>(gu28.cview(), o24.cview(), g26.view()), ShapeError,
                          "dgate_up", "expected [2, 8]", "found [2, 6]");

  // rmsnorm
  DynTensor<T, 1> v3(3), v4(4);
  v3.zero();
  v4.zero();
  CHECK_THROWS_CONTAINING(Bk::template rmsnorm_forward<T>(a34.cview(), a43.view(), v3.view(), T(1e-5)), ShapeError,
                          "rmsnorm_forward", "[3, 4]", "[4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template rmsnorm_forward<T>(a34.cview(), a34.view(), v4.view(), T(1e-5)), ShapeError,
                          "rmsnorm_forward", "rstd", "expected shape [3]", "found [4]");
  CHECK_THROWS_CONTAINING(Bk::template rmsnorm_backward<T>(a34.cview(), v3.cview(), a43.cview(), a34.view(), true),
                          ShapeError, "rmsnorm_backward", "dy", "[3, 4]", "[4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template rmsnorm_backward<T>(a34.cview(), v3.cview(), a34.cview(), c35.view(), true),
                          ShapeError, "rmsnorm_backward", "dx", "[3, 4]", "[3, 5]");
  CHECK_THROWS_CONTAINING(Bk::template rmsnorm_backward<T>(a34.cview(), v4.cview(), a34.cview(), a34.view(), true),
                          ShapeError, "rmsnorm_backward", "rstd", "[3]", "[4]");

  // softmax backward
  CHECK_THROWS_CONTAINING(Bk::template softmax_rows_backward<T>(a34.cview(), a43.cview(), a34.view(), T(1)),
                          ShapeError, "softmax_rows_backward", "[3, 4]", "[4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template softmax_rows_backward<T>(a34.cview(), a34.cview(), c35.view(), T(1)),
                          ShapeError, "softmax_rows_backward", "ds", "[3, 4]", "[3, 5]");

  // rope: tables the shape of x; head_dim even
  CHECK_THROWS_CONTAINING(Bk::template rope<T>(a34.view(), a43.cview(), a34.cview(), false), ShapeError, "rope",
                          "cos", "[3, 4]", "[4, 3]");
  CHECK_THROWS_CONTAINING(Bk::template rope<T>(a34.view(), a34.cview(), c35.cview(), false), ShapeError, "rope",
                          "sin", "[3, 4]", "[3, 5]");
  CHECK_THROWS_CONTAINING(Bk::template rope<T>(c35.view(), c35.cview(), c35.cview(), false), ShapeError,
                          "head_dim must be even", "5");

  // gather / scatter: ids length = rows of out/dout; widths agree
  std::vector<std::int32_t> ids{0, 1};
  CVectorView<std::int32_t> idv(ids.data(), DynExtents<1>{2});
  CHECK_THROWS_CONTAINING(Bk::template gather_rows<T>(a34.cview(), idv, T(1), a34.view()), ShapeError, "gather_rows",
                          "ids", "expected shape [3]", "found [2]");
  CHECK_THROWS_CONTAINING(Bk::template gather_rows<T>(a34.cview(), idv, T(1), rows(c35.view(), 0, 2)), ShapeError,
                          "gather_rows", "width 4", "[2, 5]");
  CHECK_THROWS_CONTAINING(Bk::template scatter_add_rows<T>(a34.cview(), idv, T(1), a34.view()), ShapeError,
                          "scatter_add_rows", "ids", "expected shape [3]", "found [2]");
  CHECK_THROWS_CONTAINING(Bk::template scatter_add_rows<T>(rows(c35.cview(), 0, 2), idv, T(1), a34.view()),
                          ShapeError, "scatter_add_rows", "width 4", "[2, 5]");

  // sum_rows / dot
  CHECK_THROWS_CONTAINING(Bk::template sum_rows<T>(a34.cview(), v3.view(), false), ShapeError, "sum_rows",
                          "expected shape [4]", "found [3]");
  CHECK_THROWS_CONTAINING(Bk::template dot<T>(a34.cview(), a43.cview()), ShapeError, "dot", "[3, 4]", "[4, 3]");
}

TEST_CASE("swiglu with an odd gate_up width names gate_up's shape") {
  Mat<float> gu27(2, 7), o23(2, 3);
  gu27.zero();
  CHECK_THROWS_CONTAINING(cpu::swiglu_forward<float>(gu27.cview(), o23.view()), ShapeError, "[2, 7]");
  CHECK_THROWS_CONTAINING(reference::swiglu_forward<float>(gu27.cview(), o23.view()), ShapeError, "[2, 7]");
}

// =============================================================================================
// Views with a column stride != 1 (e.g. a transposed view): reference handles any strides; cpu
// (Eigen maps with unit inner stride) must either give the same answer or reject the view.
// =============================================================================================

TEST_CASE_TEMPLATE("ops on a view with non-unit column stride: cpu agrees with reference or throws", T, float,
                   double) {
  Rng rng(101);
  auto base = random_mat<T>(4, 3, rng);
  // xt: the transpose of base, [3, 4] with strides {1, 3}.
  CMatrixView<T> xt(base.data(), DynExtents<2>{3, 4}, {1, 3});
  Mat<T> want(3, 4);
  reference::copy<T>(xt, want.view());
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 4; ++j) REQUIRE(want(i, j) == base(j, i));
  Mat<T> got = filled<T>(3, 4, T(0));
  bool threw = false;
  try {
    cpu::copy<T>(xt, got.view());
  } catch (const ShapeError&) {
    threw = true;
  }
  INFO("cpu::copy from a transposed view");
  CHECK((threw || bit_equal(got.cview(), want.cview())));

  Mat<T> other = random_mat<T>(3, 4, rng);
  Mat<T> want_sum(3, 4);
  reference::add<T>(xt, other.cview(), want_sum.view());
  Mat<T> got_sum = filled<T>(3, 4, T(0));
  threw = false;
  try {
    cpu::add<T>(xt, other.cview(), got_sum.view());
  } catch (const ShapeError&) {
    threw = true;
  }
  INFO("cpu::add from a transposed view");
  CHECK((threw || bit_equal(got_sum.cview(), want_sum.cview())));

  // A broadcast view (row stride 0: one row seen three times), as a bias might be expanded.
  std::vector<T> bias{1, 2, 3, 4};
  CMatrixView<T> bc(bias.data(), DynExtents<2>{3, 4}, {0, 1});
  Mat<T> want_bc(3, 4), got_bc = filled<T>(3, 4, T(0));
  reference::copy<T>(bc, want_bc.view());
  CHECK(want_bc(2, 3) == T(4));
  threw = false;
  try {
    cpu::copy<T>(bc, got_bc.view());
  } catch (const ShapeError&) {
    threw = true;
  }
  INFO("cpu::copy from a broadcast view");
  CHECK((threw || bit_equal(got_bc.cview(), want_bc.cview())));
  Mat<T> eye(4, 4), g_ref(3, 4), g_cpu = filled<T>(3, 4, T(0));
  eye.zero();
  for (index_t i = 0; i < 4; ++i) eye(i, i) = 1;
  reference::gemm<T>(Trans::N, Trans::N, T(1), bc, eye.cview(), T(0), g_ref.view());
  CHECK(bit_equal(g_ref.cview(), want_bc.cview()));
  threw = false;
  try {
    cpu::gemm<T>(Trans::N, Trans::N, T(1), bc, eye.cview(), T(0), g_cpu.view());
  } catch (const ShapeError&) {
    threw = true;
  }
  INFO("cpu::gemm with a broadcast A");
  CHECK((threw || bit_equal(g_cpu.cview(), g_ref.cview())));
  // Where cpu rejects, the message names the shape and the strides.
  CHECK_THROWS_CONTAINING(cpu::copy<T>(xt, got.view()), ShapeError, "[3, 4]", "[1, 3]");
}
