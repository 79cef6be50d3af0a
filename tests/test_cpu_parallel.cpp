// trm::cpu's elementwise ops on its thread pool (trm/backend/cpu_pool.hpp): sizes big enough to be
// split between threads give bit-identical results for 1, 2 and 3 threads and from run to run; the
// pool survives nested calls, calls from several user threads and thread-count changes; and the
// optional fused op swiglu_backward_act agrees with swiglu_forward + swiglu_backward.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <latch>
#include <thread>
#include <trm/backend/cpu.hpp>
#include <trm/backend/reference.hpp>
#include <trm/core/rng.hpp>
#include <trm/core/tensor.hpp>
#include <vector>

using namespace trm;

namespace {

using Mat = DynTensor<float, 2>;

Mat random_mat(index_t r, index_t c, Rng& rng, double lo = -3, double hi = 3) {
  Mat m(r, c);
  for (auto& v : m.span()) v = float(rng.uniform(lo, hi));
  return m;
}
bool bit_equal(const Mat& a, const Mat& b) {
  return a.extents() == b.extents() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

// Runs `op` (which writes its results into the returned tensors) with 1, 2 and 3 threads and checks
// that every result is bit-identical to the single-threaded one.
void check_thread_invariant(const char* what, const std::function<std::vector<Mat>()>& op) {
  const int saved = cpu::num_threads();
  cpu::set_num_threads(1);
  const auto ref = op();
  for (int threads : {2, 3, 2}) {
    cpu::set_num_threads(threads);
    for (int rep = 0; rep < 2; ++rep) {
      const auto got = op();
      REQUIRE(got.size() == ref.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO(std::string(what) << ": result " << i << " with " << threads << " threads, repetition " << rep);
        CHECK(bit_equal(got[i], ref[i]));
      }
    }
  }
  cpu::set_num_threads(saved);
}

}  // namespace

// First in this file on purpose: doctest runs a file's tests in order, so no set_num_threads call
// has happened yet and every thread's first op finds the thread count unset. Before the count was
// atomic and applied under a mutex, this was a data race on it and concurrent
// openblas_set_num_threads calls (found while adding the ThreadSanitizer phase of tools/sanitize.sh,
// which runs this file).
TEST_CASE("first ops on three threads at once apply the default thread count once") {
  const bool unset = detail::cpu_thread_count().load() == 0;
  if (!unset) MESSAGE("the thread count was already set (tests reordered): the lazy default is not exercised");
  Rng rng(1);
  const Mat x = random_mat(301, 257, rng);  // 77,357 elements: more than one pool task
  std::vector<Mat> out(3, Mat(301, 257));
  std::latch start(3);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < out.size(); ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      cpu::copy<float>(x.cview(), out[t].view());
    });
  for (auto& t : threads) t.join();
  for (const Mat& o : out) CHECK(bit_equal(o, x));
  const int n = detail::cpu_thread_count().load();
  CHECK(n >= 1);
  CHECK(detail::CpuPool::instance().threads() == n);
  if (unset) CHECK(n == cpu::num_threads());  // OpenBLAS's default (Eigen without OpenMP: 1)
}

TEST_CASE("cpu elementwise ops: bit-identical for 1, 2 and 3 threads on sizes that are split") {
  Rng rng(3);
  // Odd sizes, more elements than one task takes, and a single long row (split by columns).
  const index_t R = 777, C = 301;
  const auto x = random_mat(R, C, rng), y0 = random_mat(R, C, rng), dy = random_mat(R, C, rng);

  check_thread_invariant("copy/fill/scale/axpy/add", [&] {
    Mat a(R, C), b = y0, c(R, C), d(R, C);
    cpu::copy<float>(x.cview(), a.view());
    cpu::axpy<float>(0.5f, x.cview(), b.view());
    cpu::add<float>(x.cview(), y0.cview(), c.view());
    cpu::fill<float>(d.view(), 2.5f);
    cpu::scale<float>(d.view(), -3.0f);
    return std::vector<Mat>{a, b, c, d};
  });

  check_thread_invariant("transpose_batched", [&] {
    DynTensor<float, 3> in(5, 97, 301), out(5, 301, 97), acc(5, 301, 97);
    Rng r2(4);
    for (auto& v : in.span()) v = float(r2.uniform(-1, 1));
    for (auto& v : acc.span()) v = float(r2.uniform(-1, 1));
    cpu::transpose_batched<float>(in.cview(), out.view(), false);
    cpu::transpose_batched<float>(in.cview(), acc.view(), true);
    Mat o(5 * 301, 97), a(5 * 301, 97);
    std::memcpy(o.data(), out.data(), out.bytes());
    std::memcpy(a.data(), acc.data(), acc.bytes());
    return std::vector<Mat>{o, a};
  });

  // Not a structured binding: CAPTURE and the lambda below capture the sizes, which clang before 16
  // refuses for a binding (tools/sanitize.sh builds with clang).
  for (const auto& size : {std::pair<index_t, index_t>{301, 257}, {1, 50001}}) {
    const index_t rows = size.first, inter = size.second;
    CAPTURE(rows);
    const auto gu = random_mat(rows, 2 * inter, rng), dout = random_mat(rows, inter, rng);
    check_thread_invariant("swiglu", [&] {
      Mat out(rows, inter), dgu(rows, 2 * inter), dgu2(rows, 2 * inter), act(rows, inter);
      cpu::swiglu_forward<float>(gu.cview(), out.view());
      cpu::swiglu_backward<float>(gu.cview(), dout.cview(), dgu.view());
      cpu::swiglu_backward_act<float>(gu.cview(), dout.cview(), dgu2.view(), act.view());
      return std::vector<Mat>{out, dgu, dgu2, act};
    });
  }

  check_thread_invariant("rmsnorm", [&] {
    Mat yv(R, C), dx(R, C), dxa = y0;
    DynTensor<float, 1> rs(R);
    cpu::rmsnorm_forward<float>(x.cview(), yv.view(), rs.view(), 1e-5f);
    cpu::rmsnorm_backward<float>(yv.cview(), rs.cview(), dy.cview(), dx.view(), false);
    cpu::rmsnorm_backward<float>(yv.cview(), rs.cview(), dy.cview(), dxa.view(), true);
    Mat rsm(1, R);
    std::memcpy(rsm.data(), rs.data(), rs.bytes());
    return std::vector<Mat>{yv, dx, dxa, rsm};
  });

  check_thread_invariant("softmax", [&] {
    Mat p = x, ds(R, C);
    cpu::softmax_rows<float>(p.view(), 0.125f);
    cpu::softmax_rows_backward<float>(p.cview(), dy.cview(), ds.view(), 0.125f);
    return std::vector<Mat>{p, ds};
  });

  check_thread_invariant("rope", [&] {
    const index_t S = 600, D = 64;
    Rng r3(5);
    Mat q = random_mat(S, D, r3), cs = random_mat(S, D, r3, -1, 1), sn = random_mat(S, D, r3, -1, 1), q2 = q;
    cpu::rope<float>(q.view(), cs.cview(), sn.cview(), false);
    cpu::rope<float>(q2.view(), cs.cview(), sn.cview(), true);
    return std::vector<Mat>{q, q2};
  });
}

TEST_CASE("swiglu_backward_act: dgate_up equals swiglu_backward bit for bit, act equals swiglu_forward") {
  Rng rng(8);
  const index_t rows = 203, inter = 301;
  auto gu = random_mat(rows, 2 * inter, rng, -6, 6);
  gu(0, 0) = -100.0f;  // saturating gates stay finite
  gu(0, 1) = 100.0f;
  const auto dout = random_mat(rows, inter, rng);
  for (int threads : {1, 2}) {
    cpu::set_num_threads(threads);
    Mat out(rows, inter), dgu(rows, 2 * inter), dgu2(rows, 2 * inter), act(rows, inter);
    cpu::swiglu_forward<float>(gu.cview(), out.view());
    cpu::swiglu_backward<float>(gu.cview(), dout.cview(), dgu.view());
    cpu::swiglu_backward_act<float>(gu.cview(), dout.cview(), dgu2.view(), act.view());
    CHECK(bit_equal(dgu, dgu2));
    double worst = 0;
    for (index_t i = 0; i < out.size(); ++i) {
      CHECK(std::isfinite(act.data()[i]));
      worst = std::max(worst, std::abs(double(act.data()[i]) - double(out.data()[i])) /
                                  std::max(1.0, std::abs(double(out.data()[i]))));
    }
    CHECK(worst <= 1e-6);  // the two formulas differ by a rounding or two
  }
  cpu::set_num_threads(2);
}

TEST_CASE("cpu pool: nested calls, several user threads and thread-count changes") {
  auto& pool = detail::CpuPool::instance();
  cpu::set_num_threads(2);
  // Nested: a task that runs an op which would use the pool runs it serially on its own thread.
  std::vector<std::atomic<int>> hits(64);
  pool.run(8, [&](int t) {
    detail::parallel_ranges(8, 1, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) hits[std::size_t(t * 8 + i)].fetch_add(1);
    });
  });
  for (auto& h : hits) CHECK(h.load() == 1);

  // Several user threads at once: each job still runs every task exactly once.
  std::atomic<long> total{0};
  std::vector<std::thread> users;
  for (int u = 0; u < 3; ++u)
    users.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep)
        detail::parallel_ranges(1000, 10, [&](index_t b, index_t e) { total.fetch_add(long(e - b)); });
    });
  for (auto& t : users) t.join();
  CHECK(total.load() == 3L * 200 * 1000);

  // Many short jobs with thread-count changes in between.
  long sum = 0;
  for (int rep = 0; rep < 300; ++rep) {
    if (rep % 50 == 0) cpu::set_num_threads(1 + rep / 50 % 3);
    std::atomic<long> s{0};
    detail::parallel_ranges(4096, 64, [&](index_t b, index_t e) {
      long acc = 0;
      for (index_t i = b; i < e; ++i) acc += long(i);
      s.fetch_add(acc);
    });
    sum += s.load();
  }
  CHECK(sum == 300L * (4095L * 4096 / 2));
  cpu::set_num_threads(2);
}
