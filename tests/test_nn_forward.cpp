// Layer forward passes checked against values computed by hand on tiny cases, on both host
// backends, plus the SwiGLU intermediate-size rule (SPEC §1.4/§1.5), the shape errors of the
// layers (they name the layer, the argument and both shapes), and the layer contract: every layer
// is a trm::Layer, and one const layer runs on two threads at once (each with its own Cache and
// Workspace) with results bit-identical to a single-threaded run.
//
// Tolerance: doctest::Approx epsilon 1e-6 for float (a handful of roundings of O(1) values, ~8 ulp)
// and 1e-12 for double; exact comparisons where the layer only copies or multiplies by 1.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <latch>
#include <limits>
#include <thread>
#include <trm/trm.hpp>
#include <vector>

#include "support/check_throws.hpp"

using namespace trm;

namespace {
template <class T>
constexpr double eps_v = std::is_same_v<T, float> ? 1e-6 : 1e-12;

template <class Tn>
void fill_nan(Tn& t) {
  for (auto& v : t.span()) v = std::numeric_limits<typename Tn::value_type>::quiet_NaN();
}

template <class T>
void fill_uniform(std::span<T> s, Rng& rng) {
  for (auto& v : s) v = T(rng.uniform(-1, 1));
}

// The backends crossed with the scalar types.
template <class B, class T>
struct Cfg {
  using backend = B;
  using scalar = T;
};
}  // namespace

#define TRM_NN_CONFIGS Cfg<reference, float>, Cfg<reference, double>, Cfg<cpu, float>, Cfg<cpu, double>

TEST_CASE_TEMPLATE("Linear with bias on a 2x2 case", C, TRM_NN_CONFIGS) {
  using T = typename C::scalar;
  using Bk = typename C::backend;
  Linear<2, 2, true, T, Bk> lin;
  // W = [[1, 2], [3, 4]] ([out, in]), b = [0.5, -1]
  lin.weight.value(0, 0) = 1, lin.weight.value(0, 1) = 2;
  lin.weight.value(1, 0) = 3, lin.weight.value(1, 1) = 4;
  lin.bias.value(0, 0) = T(0.5), lin.bias.value(0, 1) = -1;
  CHECK(lin.bias.shape == std::vector<index_t>{2});
  DynTensor<T, 2> x(2, 2), y(2, 2);
  x(0, 0) = 1, x(0, 1) = 1;
  x(1, 0) = 2, x(1, 1) = -1;
  fill_nan(y);
  typename decltype(lin)::Cache c;
  typename decltype(lin)::Workspace ws;
  lin.forward(x.cview(), y.view(), c, ws);
  // y = x W^T + b: [1 + 2, 3 + 4] + b = [3.5, 6]; [2 - 2, 6 - 4] + b = [0.5, 1]
  CHECK(y(0, 0) == T(3.5));
  CHECK(y(0, 1) == T(6));
  CHECK(y(1, 0) == T(0.5));
  CHECK(y(1, 1) == T(1));

  Linear<3, 1, false, T, Bk> plain;  // no bias: a dot product per row
  plain.weight.value(0, 0) = 2, plain.weight.value(0, 1) = -1, plain.weight.value(0, 2) = T(0.25);
  DynTensor<T, 2> x3(1, 3), y1(1, 1);
  x3(0, 0) = 1, x3(0, 1) = 2, x3(0, 2) = 4;
  typename decltype(plain)::Cache c2;
  typename decltype(plain)::Workspace ws2;
  plain.forward(x3.cview(), y1.view(), c2, ws2);
  CHECK(y1(0, 0) == T(1));
  CHECK(count_parameters(lin) == 6);
  CHECK(count_parameters(plain) == 3);
}

TEST_CASE_TEMPLATE("Embedding: rows of the table, scaled", C, TRM_NN_CONFIGS) {
  using T = typename C::scalar;
  using Bk = typename C::backend;
  // The reference scales token embeddings by sqrt(D) (SPEC §1.2): D = 4 -> 2.
  Embedding<5, 4, T, Bk> emb(T(std::sqrt(4.0)));
  for (index_t v = 0; v < 5; ++v)
    for (index_t j = 0; j < 4; ++j) emb.weight.value(v, j) = T(10 * v + j);
  std::vector<std::int32_t> ids{2, 0, 4, 2};
  CVectorView<std::int32_t> idv(ids.data(), DynExtents<1>{4});
  DynTensor<T, 2> y(4, 4);
  fill_nan(y);
  typename decltype(emb)::Cache c;
  typename decltype(emb)::Workspace ws;
  emb.forward(idv, y.view(), c, ws);
  for (index_t r = 0; r < 4; ++r)
    for (index_t j = 0; j < 4; ++j) CHECK(y(r, j) == T(2 * (10 * ids[std::size_t(r)] + j)));
  CHECK(emb.scale == T(2));
}

TEST_CASE_TEMPLATE("RmsNorm over the hidden axis and over the sequence axis", C, TRM_NN_CONFIGS) {
  using T = typename C::scalar;
  using Bk = typename C::backend;
  const double eps = double(T(1e-5));
  {
    // [3, 4]: mean square 12.5, rstd = 1/sqrt(12.5 + eps); second row [1, -1]: 1/sqrt(1 + eps).
    RmsNorm<NormAxis::hidden, T, Bk> norm;
    DynTensor<T, 3> x(1, 2, 2), y(1, 2, 2);
    x(0, 0, 0) = 3, x(0, 0, 1) = 4, x(0, 1, 0) = 1, x(0, 1, 1) = -1;
    fill_nan(y);
    typename decltype(norm)::Cache c;
    typename decltype(norm)::Workspace ws;
    norm.forward(x.cview(), y.view(), c, ws);
    const double r0 = 1 / std::sqrt(12.5 + eps), r1 = 1 / std::sqrt(1 + eps);
    CHECK(c.rstd(0) == doctest::Approx(r0).epsilon(eps_v<T>));
    CHECK(c.rstd(1) == doctest::Approx(r1).epsilon(eps_v<T>));
    CHECK(y(0, 0, 0) == doctest::Approx(3 * r0).epsilon(eps_v<T>));
    CHECK(y(0, 0, 1) == doctest::Approx(4 * r0).epsilon(eps_v<T>));
    CHECK(y(0, 1, 0) == doctest::Approx(r1).epsilon(eps_v<T>));
    CHECK(y(0, 1, 1) == doctest::Approx(-r1).epsilon(eps_v<T>));
  }
  {
    // Over the sequence axis: x[0, :, 0] = [3, 4] and x[0, :, 1] = [1, -1] are the normalised
    // vectors (each channel over the 2 positions), the same numbers transposed.
    RmsNorm<NormAxis::sequence, T, Bk> norm;
    DynTensor<T, 3> x(1, 2, 2), y(1, 2, 2);
    x(0, 0, 0) = 3, x(0, 1, 0) = 4, x(0, 0, 1) = 1, x(0, 1, 1) = -1;
    fill_nan(y);
    typename decltype(norm)::Cache c;
    typename decltype(norm)::Workspace ws;
    norm.forward(x.cview(), y.view(), c, ws);
    const double r0 = 1 / std::sqrt(12.5 + eps), r1 = 1 / std::sqrt(1 + eps);
    CHECK(c.rstd(0) == doctest::Approx(r0).epsilon(eps_v<T>));  // channel 0
    CHECK(c.rstd(1) == doctest::Approx(r1).epsilon(eps_v<T>));  // channel 1
    CHECK(y(0, 0, 0) == doctest::Approx(3 * r0).epsilon(eps_v<T>));
    CHECK(y(0, 1, 0) == doctest::Approx(4 * r0).epsilon(eps_v<T>));
    CHECK(y(0, 0, 1) == doctest::Approx(r1).epsilon(eps_v<T>));
    CHECK(y(0, 1, 1) == doctest::Approx(-r1).epsilon(eps_v<T>));
  }
  {
    // Two batch elements, three positions, sequence axis: every channel of every batch element has
    // unit mean square afterwards (up to eps).
    RmsNorm<NormAxis::sequence, T, Bk> norm;
    Rng rng(3);
    DynTensor<T, 3> x(2, 3, 4), y(2, 3, 4);
    fill_uniform(x.span(), rng);
    typename decltype(norm)::Cache c;
    typename decltype(norm)::Workspace ws;
    norm.forward(x.cview(), y.view(), c, ws);
    for (index_t b = 0; b < 2; ++b)
      for (index_t d = 0; d < 4; ++d) {
        double ms = 0, xs = 0;
        for (index_t s = 0; s < 3; ++s) {
          ms += double(y(b, s, d)) * double(y(b, s, d));
          xs += double(x(b, s, d)) * double(x(b, s, d));
        }
        xs /= 3;
        CHECK(ms / 3 == doctest::Approx(xs / (xs + eps)).epsilon(10 * eps_v<T>));
        CHECK(double(y(b, 1, d)) == doctest::Approx(double(x(b, 1, d)) / std::sqrt(xs + eps)).epsilon(10 * eps_v<T>));
      }
  }
}

TEST_CASE("SwiGlu intermediate size follows the reference (SPEC §1.4, §1.5)") {
  // round(e * w * 2/3) rounded up to a multiple of 256
  static_assert(swiglu_intermediate(512, 4) == 1536);  // 1365.33 -> 1365 -> 1536 (SPEC §1.4)
  static_assert(swiglu_intermediate(97, 4) == 512);    // Sudoku Ltot 97: 258.67 -> 259 -> 512 (SPEC §1.5)
  static_assert(swiglu_intermediate(916, 4) == 2560);  // Maze/ARC Ltot 916: 2442.67 -> 2443 -> 2560
  static_assert(swiglu_intermediate(2, 4) == 256);
  static_assert(swiglu_intermediate(384, 1) == 256);     // exactly 256
  static_assert(swiglu_intermediate(385, 1) == 512);     // 256.67 -> 257 -> 512
  static_assert(swiglu_intermediate(96, 3, 1) == 256);   // 192
  static_assert(swiglu_intermediate(512, 8, 3) == 1024); // e = 8/3: 910.2 -> 910 -> 1024
  static_assert(SwiGlu<512>::inter == 1536);
  static_assert(TokenMlp<97>::mlp_type::inter == 512);
  static_assert(TokenMlp<916>::mlp_type::inter == 2560);
  // round half up: e * w * 2/3 = x.5 exactly cannot happen with integer e, w (denominator 3), but
  // the rounding of (2x + q) / 2q is checked on a value just below and above a multiple of 256:
  static_assert(swiglu_intermediate(576, 1) == 512);  // 384 -> 512
  CHECK(SwiGlu<97>::inter == 512);
}

TEST_CASE_TEMPLATE("SwiGlu forward on a hand-built case", C, TRM_NN_CONFIGS) {
  using T = typename C::scalar;
  using Bk = typename C::backend;
  SwiGlu<2, 4, T, Bk> mlp;  // inter = 256; weights start at zero
  constexpr index_t inter = decltype(mlp)::inter;
  static_assert(inter == 256);
  CHECK(mlp.gate_up_proj.value.shape() == std::array<index_t, 2>{2 * inter, 2});
  CHECK(mlp.down_proj.value.shape() == std::array<index_t, 2>{2, inter});
  // gate_0 = x_0, up_0 = x_1; down: y = [1, 2] * h_0. Every other unit has zero gate and up.
  mlp.gate_up_proj.value(0, 0) = 1;
  mlp.gate_up_proj.value(inter + 0, 1) = 1;
  mlp.down_proj.value(0, 0) = 1;
  mlp.down_proj.value(1, 0) = 2;
  DynTensor<T, 3> x(1, 2, 2), y(1, 2, 2);
  x(0, 0, 0) = 1, x(0, 0, 1) = 2;   // h_0 = silu(1) * 2
  x(0, 1, 0) = -2, x(0, 1, 1) = 3;  // h_0 = silu(-2) * 3
  fill_nan(y);
  typename decltype(mlp)::Cache c;
  typename decltype(mlp)::Workspace ws;
  mlp.forward(x.cview(), y.view(), c, ws);
  const double silu1 = 0.7310585786300049, silu_m2 = -0.2384058440442351;
  CHECK(y(0, 0, 0) == doctest::Approx(2 * silu1).epsilon(eps_v<T>));
  CHECK(y(0, 0, 1) == doctest::Approx(4 * silu1).epsilon(eps_v<T>));
  CHECK(y(0, 1, 0) == doctest::Approx(3 * silu_m2).epsilon(eps_v<T>));
  CHECK(y(0, 1, 1) == doctest::Approx(6 * silu_m2).epsilon(eps_v<T>));
  // The fused projection is cached: gate_up[row 0] = [1, 0, ..., | 2, 0, ...].
  CHECK(c.gate_up(0, 0) == T(1));
  CHECK(c.gate_up(0, inter) == T(2));
  CHECK(c.gate_up(1, 1) == T(0));
}

TEST_CASE_TEMPLATE("RotaryEmbedding: identity at position 0, known rotation at position 1", C, TRM_NN_CONFIGS) {
  using T = typename C::scalar;
  using Bk = typename C::backend;
  RotaryEmbedding<4, T, Bk> rope(8);
  CHECK(rope.max_positions() == 8);
  DynTensor<T, 2> x(2, 4);
  for (index_t p = 0; p < 2; ++p)
    for (index_t i = 0; i < 4; ++i) x(p, i) = T(i + 1);  // [1, 2, 3, 4] at positions 0 and 1
  DynTensor<T, 2> orig = x;
  rope.forward(x.view());
  // Position 0: angle 0 -> cos 1, sin 0: unchanged, exactly.
  for (index_t i = 0; i < 4; ++i) CHECK(x(0, i) == orig(0, i));
  // Position 1: inv_freq = [1, theta^(-2/4)] = [1, 0.01] (in fp32, as the reference), angles
  // [1, 0.01]; rotate-half pairs (x0, x2) and (x1, x3):
  //   x0' = x0 cos a0 - x2 sin a0, x2' = x2 cos a0 + x0 sin a0 (a0 = 1), same for (x1, x3) with a1.
  const double a0 = 1.0, a1 = double(0.01f);
  CHECK(x(1, 0) == doctest::Approx(1 * std::cos(a0) - 3 * std::sin(a0)).epsilon(eps_v<T>));
  CHECK(x(1, 1) == doctest::Approx(2 * std::cos(a1) - 4 * std::sin(a1)).epsilon(eps_v<T>));
  CHECK(x(1, 2) == doctest::Approx(3 * std::cos(a0) + 1 * std::sin(a0)).epsilon(eps_v<T>));
  CHECK(x(1, 3) == doctest::Approx(4 * std::cos(a1) + 2 * std::sin(a1)).epsilon(eps_v<T>));
  // backward (the transpose, i.e. the inverse rotation) restores the input.
  rope.backward(x.view());
  for (index_t p = 0; p < 2; ++p)
    for (index_t i = 0; i < 4; ++i) CHECK(x(p, i) == doctest::Approx(orig(p, i)).epsilon(10 * eps_v<T>));
  // Fewer positions than the table holds is fine; more is a shape error.
  DynTensor<T, 2> too_long(9, 4), too_wide(2, 6);
  too_long.zero();
  too_wide.zero();
  CHECK_THROWS_CONTAINING(rope.forward(too_long.view()), ShapeError, "RotaryEmbedding", "[seq <= 8, 4]", "[9, 4]");
  CHECK_THROWS_CONTAINING(rope.forward(too_wide.view()), ShapeError, "RotaryEmbedding", "[2, 6]");
}

TEST_CASE_TEMPLATE("SelfAttention: zero weights give zeros; one position gives v projected", C, TRM_NN_CONFIGS) {
  using T = typename C::scalar;
  using Bk = typename C::backend;
  constexpr index_t H = 8, NH = 2, HD = 4;
  Rng rng(17);
  {
    SelfAttention<H, NH, T, Bk> attn;  // Params start at zero
    fill_uniform(attn.o_proj.value.span(), rng);
    DynTensor<T, 3> x(2, 3, H), y(2, 3, H);
    fill_uniform(x.span(), rng);
    fill_nan(y);
    typename decltype(attn)::Cache c;
    typename decltype(attn)::Workspace ws;
    attn.forward(x.cview(), y.view(), c, ws);
    for (auto v : y.span()) CHECK(v == T(0));
    // Zero scores: uniform attention over the 3 positions.
    for (index_t i = 0; i < c.probs.extent(0); ++i)
      for (index_t j = 0; j < 3; ++j) CHECK(c.probs(i, j) == doctest::Approx(1.0 / 3).epsilon(eps_v<T>));
  }
  // y[b] = W_o (W_v x[b]) with W_v = rows [2H, 3H) of the fused qkv weight.
  auto expected_v_projection = [&](const auto& attn, const DynTensor<T, 3>& vin, index_t b, index_t s, index_t j) {
    double acc = 0;
    for (index_t h = 0; h < H; ++h) {
      double v = 0;
      for (index_t i = 0; i < H; ++i) v += double(attn.qkv_proj.value(2 * H + h, i)) * double(vin(b, s, i));
      acc += double(attn.o_proj.value(j, h)) * v;
    }
    return acc;
  };
  for (bool with_rope : {false, true}) {
    // S = 1: softmax over a single score is 1, so the output is v projected, whatever q and k are
    // (RoPE at position 0 is the identity).
    SelfAttention<H, NH, T, Bk> attn;
    attn.init(rng);
    RotaryEmbedding<HD, T, Bk> rope(4);
    if (with_rope) attn.rope = &rope;
    DynTensor<T, 3> x(3, 1, H), y(3, 1, H);
    fill_uniform(x.span(), rng);
    fill_nan(y);
    typename decltype(attn)::Cache c;
    typename decltype(attn)::Workspace ws;
    attn.forward(x.cview(), y.view(), c, ws);
    for (index_t b = 0; b < 3; ++b)
      for (index_t j = 0; j < H; ++j)
        CHECK(double(y(b, 0, j)) == doctest::Approx(expected_v_projection(attn, x, b, 0, j)).epsilon(10 * eps_v<T>));
  }
  {
    // q = k = 0 (their rows of the fused weight zeroed): uniform attention, so every position
    // receives the mean of v over the sequence, projected.
    SelfAttention<H, NH, T, Bk> attn;
    attn.init(rng);
    for (index_t r = 0; r < 2 * H; ++r)
      for (index_t i = 0; i < H; ++i) attn.qkv_proj.value(r, i) = 0;
    DynTensor<T, 3> x(2, 3, H), y(2, 3, H), xmean(2, 1, H);
    fill_uniform(x.span(), rng);
    for (index_t b = 0; b < 2; ++b)
      for (index_t i = 0; i < H; ++i) xmean(b, 0, i) = T((double(x(b, 0, i)) + x(b, 1, i) + x(b, 2, i)) / 3);
    typename decltype(attn)::Cache c;
    typename decltype(attn)::Workspace ws;
    attn.forward(x.cview(), y.view(), c, ws);
    for (index_t b = 0; b < 2; ++b)
      for (index_t s = 0; s < 3; ++s)
        for (index_t j = 0; j < H; ++j)
          CHECK(double(y(b, s, j)) ==
                doctest::Approx(expected_v_projection(attn, xmean, b, 0, j)).epsilon(100 * eps_v<T>));
  }
}

TEST_CASE_TEMPLATE("Layers reject wrong shapes naming the layer, the argument and both shapes", Bk, reference, cpu) {
  {
    SwiGlu<8, 4, float, Bk> mlp;
    typename decltype(mlp)::Cache c;
    typename decltype(mlp)::Workspace ws;
    DynTensor<float, 3> x(2, 5, 7), y(2, 5, 8), x8(2, 5, 8), y9(2, 5, 9);
    x.zero();
    x8.zero();
    CHECK_THROWS_CONTAINING(mlp.forward(x.cview(), y.view(), c, ws), ShapeError, "SwiGlu", "input", "[2, 5, 8]",
                            "[2, 5, 7]");
    CHECK_THROWS_CONTAINING(mlp.forward(x8.cview(), y9.view(), c, ws), ShapeError, "SwiGlu", "output", "[2, 5, 8]",
                            "[2, 5, 9]");
    // The matrix overload (used by TokenMlp) names the matrix shapes.
    DynTensor<float, 2> xm(3, 7), ym(3, 8);
    xm.zero();
    CHECK_THROWS_CONTAINING(mlp.forward(xm.cview(), ym.view(), c, ws), ShapeError, "SwiGlu", "input", "[3, 8]",
                            "[3, 7]");
  }
  {
    Linear<4, 3, false, float, Bk> lin;
    typename decltype(lin)::Cache c;
    typename decltype(lin)::Workspace ws;
    DynTensor<float, 2> x(2, 5), y(2, 3), x4(2, 4), y2(2, 2);
    x.zero();
    x4.zero();
    CHECK_THROWS_CONTAINING(lin.forward(x.cview(), y.view(), c, ws), ShapeError, "Linear", "input", "[2, 4]", "[2, 5]");
    CHECK_THROWS_CONTAINING(lin.forward(x4.cview(), y2.view(), c, ws), ShapeError, "Linear", "output", "[2, 3]",
                            "[2, 2]");
  }
  {
    SelfAttention<8, 2, float, Bk> attn;
    typename decltype(attn)::Cache c;
    typename decltype(attn)::Workspace ws;
    DynTensor<float, 3> x(2, 3, 6), y(2, 3, 8), x8(2, 3, 8), y4(2, 4, 8);
    x.zero();
    x8.zero();
    CHECK_THROWS_CONTAINING(attn.forward(x.cview(), y.view(), c, ws), ShapeError, "SelfAttention", "input",
                            "[2, 3, 8]", "[2, 3, 6]");
    CHECK_THROWS_CONTAINING(attn.forward(x8.cview(), y4.view(), c, ws), ShapeError, "SelfAttention", "output",
                            "[2, 3, 8]", "[2, 4, 8]");
    // Inside a Block, the mixer's check fires first.
    Block<SelfAttention<8, 2, float, Bk>, SwiGlu<8, 4, float, Bk>> block;
    typename decltype(block)::Cache bc;
    typename decltype(block)::Workspace bws;
    DynTensor<float, 3> by(2, 3, 6);
    CHECK_THROWS_CONTAINING(block.forward(x.cview(), by.view(), bc, bws), ShapeError, "SelfAttention", "input",
                            "[2, 3, 8]", "[2, 3, 6]");
  }
  {
    TokenMlp<5, 4, float, Bk> tok;
    typename decltype(tok)::Cache c;
    typename decltype(tok)::Workspace ws;
    DynTensor<float, 3> x(2, 4, 3), y(2, 4, 3);
    x.zero();
    CHECK_THROWS_CONTAINING(tok.forward(x.cview(), y.view(), c, ws), ShapeError, "TokenMlp", "input", "[2, 5, 3]",
                            "[2, 4, 3]");
  }
  {
    RmsNorm<NormAxis::hidden, float, Bk> norm;
    typename decltype(norm)::Cache c;
    typename decltype(norm)::Workspace ws;
    DynTensor<float, 3> x(1, 2, 2), y(1, 2, 3);
    x.zero();
    CHECK_THROWS_CONTAINING(norm.forward(x.cview(), y.view(), c, ws), ShapeError, "RmsNorm", "output", "[1, 2, 2]",
                            "[1, 2, 3]");
  }
  {
    Embedding<4, 3, float, Bk> emb;
    typename decltype(emb)::Cache c;
    typename decltype(emb)::Workspace ws;
    std::vector<std::int32_t> ids{0, 1, 2};
    DynTensor<float, 2> y(3, 2);
    CHECK_THROWS_CONTAINING(emb.forward(CVectorView<std::int32_t>(ids.data(), DynExtents<1>{3}), y.view(), c, ws),
                            ShapeError, "Embedding", "output", "[3, 3]", "[3, 2]");
  }
}

// ---- the layer contract ----------------------------------------------------------------------
namespace {
template <class T, class Bk>
constexpr bool all_layers_v =
    Layer<Linear<4, 3, false, T, Bk>> && Layer<Linear<4, 2, true, T, Bk>> && Layer<RmsNorm<NormAxis::hidden, T, Bk>> &&
    Layer<RmsNorm<NormAxis::sequence, T, Bk>> && Layer<SwiGlu<8, 4, T, Bk>> && Layer<TokenMlp<5, 4, T, Bk>> &&
    Layer<SelfAttention<8, 2, T, Bk>> && Layer<ResidualNorm<SelfAttention<8, 2, T, Bk>>> &&
    Layer<ResidualNorm<SwiGlu<8, 4, T, Bk>>> && Layer<Block<TokenMlp<5, 4, T, Bk>, SwiGlu<8, 4, T, Bk>>> &&
    Layer<Block<SelfAttention<8, 2, T, Bk>, SwiGlu<8, 4, T, Bk>>> &&
    Layer<Stack<Block<TokenMlp<5, 4, T, Bk>, SwiGlu<8, 4, T, Bk>>, 2>> &&
    Layer<Stack<Block<SelfAttention<8, 2, T, Bk>, SwiGlu<8, 4, T, Bk>>, 3>>;
}  // namespace
static_assert(all_layers_v<float, reference> && all_layers_v<double, reference> && all_layers_v<float, cpu> &&
              all_layers_v<double, cpu>);
// A layer's forward is const: a const layer can run it.
static_assert(requires(const Block<TokenMlp<5, 4>, SwiGlu<8, 4>>& b, Block<TokenMlp<5, 4>, SwiGlu<8, 4>>::Cache& c,
                       Block<TokenMlp<5, 4>, SwiGlu<8, 4>>::Workspace& ws, CTensor3View<float> x, Tensor3View<float> y) {
  b.forward(x, y, c, ws);
});

namespace {
template <class Tn>
bool bit_equal(const Tn& a, const Tn& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

// Runs `layer` (through a const reference) on two threads at once, each on its own input with its
// own Cache and Workspace, `iterations` times, and checks every output bit for bit against a
// single-threaded run. Then each thread's last Cache drives a backward (on this thread), which
// must give the single-threaded input gradient bit for bit.
template <class L>
void check_two_threads(L& layer, index_t b, index_t s, index_t d, Rng& rng) {
  using T = typename L::scalar_type;
  constexpr int threads = 2, iterations = 200;
  const L& shared = layer;
  std::vector<DynTensor<T, 3>> x, y_ref, dy, dx_ref;
  for (int t = 0; t < threads; ++t) {
    x.emplace_back(b, s, d);
    dy.emplace_back(b, s, d);
    fill_uniform(x.back().span(), rng);
    fill_uniform(dy.back().span(), rng);
  }
  auto backward_dx = [&](int t, const DynTensor<T, 3>& y, const typename L::Cache& c) {
    DynTensor<T, 3> dx(b, s, d);
    dx.zero();
    typename L::Workspace ws;
    layer.backward(x[t].cview(), y.cview(), c, dy[t].cview(), dx.view(), ws);
    return dx;
  };
  for (int t = 0; t < threads; ++t) {  // the single-threaded run
    typename L::Cache c;
    typename L::Workspace ws;
    y_ref.emplace_back(b, s, d);
    shared.forward(x[t].cview(), y_ref.back().view(), c, ws);
    dx_ref.push_back(backward_dx(t, y_ref.back(), c));
  }
  std::vector<typename L::Cache> caches(threads);
  std::vector<DynTensor<T, 3>> y_last;
  for (int t = 0; t < threads; ++t) y_last.emplace_back(b, s, d);
  std::atomic<int> mismatches{0}, failures{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        typename L::Workspace ws;  // one per thread, reused across its calls
        start.arrive_and_wait();
        for (int it = 0; it < iterations; ++it) {
          fill_nan(y_last[t]);
          shared.forward(x[t].cview(), y_last[t].view(), caches[t], ws);
          if (!bit_equal(y_last[t], y_ref[t])) ++mismatches;
        }
      } catch (...) {
        ++failures;
      }
    });
  for (auto& th : pool) th.join();
  CHECK(failures.load() == 0);
  CHECK(mismatches.load() == 0);
  for (int t = 0; t < threads; ++t) {
    CHECK(bit_equal(y_last[t], y_ref[t]));
    CHECK(bit_equal(backward_dx(t, y_last[t], caches[t]), dx_ref[t]));
  }
}
}  // namespace

TEST_CASE_TEMPLATE("A const Block runs on two threads at once, bit-identical to one thread", Bk, reference, cpu) {
  Rng rng(21);
  SUBCASE("token-MLP mixer, keeping the SwiGLU's cache") {
    Block<TokenMlp<5, 4, float, Bk>, SwiGlu<8, 4, float, Bk>> block;
    block.init(rng);
    check_two_threads(block, 3, 5, 8, rng);
  }
  SUBCASE("token-MLP mixer, recomputing it in blocks of rows (the Workspace's chunk path)") {
    Block<TokenMlp<5, 4, float, Bk>, SwiGlu<8, 4, float, Bk>> block;
    block.init(rng);
    block.mixer.keep_rows_max = 0;
    block.mixer.chunk_rows = 7;  // 24 rows of [B*D, S] in 4 blocks of 6
    check_two_threads(block, 3, 5, 8, rng);
  }
  SUBCASE("attention mixer with RoPE") {
    Block<SelfAttention<8, 2, float, Bk>, SwiGlu<8, 4, float, Bk>> block;
    block.init(rng);
    RotaryEmbedding<4, float, Bk> rope(8);
    block.mixer.inner.rope = &rope;
    check_two_threads(block, 3, 5, 8, rng);
  }
}
