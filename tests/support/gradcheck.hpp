#pragma once
// Finite-difference gradient checks in double precision, shared by the layer tests.
// loss(theta) = sum(w * f(x; theta)) with a fixed random w, so dL/dy = w; the analytic gradients
// from backward are compared with central differences (h = 1e-5) on every element of small tensors.
// In double, central differences have truncation error O(h^2 * f3) ~ 1e-10 and rounding error
// ~ eps * |L| / h ~ 1e-11 * |L|; errors are relative to max(|numeric| + |analytic|, 1e-2), so near-zero
// gradients are judged by an absolute 1e-8. A bound of 1e-6 separates right from wrong by orders of magnitude (a wrong backward errs by O(1)).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <trm/trm.hpp>
#include <vector>

namespace trm::test {

inline void fill_random(std::span<double> v, Rng& rng, double scale = 1.0) {
  for (auto& x : v) x = scale * rng.uniform(-1.0, 1.0);
}

struct GradCheckResult {
  double max_rel_error = 0;
  std::string worst;
};

// TRM_GRADCHECK_STRIDE=k (default 1): probe only every k-th element (and the last one) with
// finite differences. tools/sanitize.sh sets it: under ASan at -O1 the probes (two forwards each,
// through the reference backend's element loops) made test_nn_gradcheck run for over 14 minutes on
// 2 shared cores, while forward and backward still run over every element with any stride, which
// is what a sanitizer checks. The regular suite probes every element.
inline std::size_t gradcheck_stride() {
  const char* s = std::getenv("TRM_GRADCHECK_STRIDE");
  const long k = s ? std::strtol(s, nullptr, 10) : 1;
  return k > 1 ? std::size_t(k) : 1;
}

// Compares analytic[i] with (f(p+h) - f(p-h)) / 2h for every element of `values` (every
// gradcheck_stride()-th one and the last when that is more than 1).
inline void check_elements(const std::string& what, std::span<double> values, std::span<const double> analytic,
                           const std::function<double()>& loss, GradCheckResult& result, double h = 1e-5) {
  REQUIRE(values.size() == analytic.size());
  const std::size_t n = values.size(), stride = gradcheck_stride();
  for (std::size_t i = 0; i < n; i = i + 1 == n ? n : std::min(i + stride, n - 1)) {
    const double saved = values[i];
    values[i] = saved + h;
    const double lp = loss();
    values[i] = saved - h;
    const double lm = loss();
    values[i] = saved;
    const double numeric = (lp - lm) / (2 * h);
    const double err = std::abs(numeric - analytic[i]) / std::max(1e-2, std::abs(numeric) + std::abs(analytic[i]));
    if (err > result.max_rel_error) {
      result.max_rel_error = err;
      result.worst = what + "[" + std::to_string(i) + "]: analytic " + std::to_string(analytic[i]) + ", numeric " +
                     std::to_string(numeric);
    }
  }
}

inline constexpr double grad_tolerance = 1e-6;

// Checks input and parameter gradients of a sequence layer on x of shape [b, s, d].
// `dx_init` pre-fills dx with a constant to check that backward *adds* into it.
template <class L>
GradCheckResult gradcheck_sequence_layer(L& layer, index_t b, index_t s, index_t d, std::uint64_t seed,
                                         double x_scale = 1.0) {
  Rng rng(seed);
  DynTensor<double, 3> x(b, s, d), y(b, s, d), w(b, s, d), dx(b, s, d);
  fill_random(x.span(), rng, x_scale);
  fill_random(w.span(), rng);
  typename L::Cache cache;
  typename L::Workspace ws;
  auto loss = [&]() {
    typename L::Cache c;
    layer.forward(x.cview(), y.view(), c, ws);  // the workspace is reused, as callers do
    double acc = 0;
    for (index_t i = 0; i < y.size(); ++i) acc += y.data()[i] * w.data()[i];
    return acc;
  };
  layer.for_each_parameter([](const std::string&, auto& p) { p.zero_grad(); });
  layer.forward(x.cview(), y.view(), cache, ws);
  const double dx_init = 0.25;
  for (auto& v : dx.span()) v = dx_init;
  layer.backward(x.cview(), y.cview(), cache, w.cview(), dx.view(), ws);
  std::vector<double> analytic(dx.span().begin(), dx.span().end());
  for (auto& v : analytic) v -= dx_init;
  GradCheckResult result;
  check_elements("input", x.span(), analytic, loss, result);
  layer.for_each_parameter([&](const std::string& name, auto& p) {
    std::vector<double> g(p.grad.span().begin(), p.grad.span().end());
    check_elements(name, p.value.span(), g, loss, result);
  });
  return result;
}

}  // namespace trm::test
