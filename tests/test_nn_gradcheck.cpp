// Finite-difference checks of every layer's input and parameter gradients, in double precision,
// on both host backends. Tolerance: see tests/support/gradcheck.hpp (1e-6 relative).
#include "support/gradcheck.hpp"

using namespace trm;
using trm::test::grad_tolerance;

TEST_CASE_TEMPLATE("Linear gradients (with and without bias)", Bk, reference, cpu) {
  Rng rng(1);
  auto check = [&](auto& layer, index_t rows_n) {
    using L = std::remove_reference_t<decltype(layer)>;
    layer.init(rng);
    if constexpr (L::has_bias) test::fill_random(layer.bias.value.span(), rng);
    DynTensor<double, 2> x(rows_n, L::in_features), y(rows_n, L::out_features), w(rows_n, L::out_features),
        dx(rows_n, L::in_features);
    test::fill_random(x.span(), rng);
    test::fill_random(w.span(), rng);
    dx.zero();
    typename L::Cache c;
    typename L::Workspace ws;
    layer.forward(x.cview(), y.view(), c, ws);
    layer.backward(x.cview(), y.cview(), c, w.cview(), dx.view(), ws);
    auto loss = [&] {
      typename L::Cache cc;
      layer.forward(x.cview(), y.view(), cc, ws);
      double acc = 0;
      for (index_t i = 0; i < y.size(); ++i) acc += y.data()[i] * w.data()[i];
      return acc;
    };
    test::GradCheckResult r;
    std::vector<double> dxv(dx.span().begin(), dx.span().end());
    test::check_elements("input", x.span(), dxv, loss, r);
    layer.for_each_parameter([&](const std::string& n, auto& p) {
      std::vector<double> g(p.grad.span().begin(), p.grad.span().end());
      test::check_elements(n, p.value.span(), g, loss, r);
    });
    INFO(r.worst);
    CHECK(r.max_rel_error < grad_tolerance);
  };
  Linear<5, 3, false, double, Bk> plain;
  check(plain, 4);
  Linear<6, 2, true, double, Bk> biased;
  check(biased, 3);
}

TEST_CASE_TEMPLATE("Embedding gradient accumulates scaled rows, repeated ids included", Bk, reference, cpu) {
  Rng rng(2);
  Embedding<7, 4, double, Bk> emb(2.5);
  emb.init(rng);
  std::vector<std::int32_t> ids{3, 0, 3, 6, 1};
  DynTensor<double, 2> y(5, 4), w(5, 4);
  test::fill_random(w.span(), rng);
  CVectorView<std::int32_t> idv(ids.data(), DynExtents<1>{5});
  typename decltype(emb)::Cache c;
  typename decltype(emb)::Workspace ws;
  emb.forward(idv, y.view(), c, ws);
  CHECK(y(0, 1) == doctest::Approx(2.5 * emb.weight.value(3, 1)));
  emb.backward(idv, y.cview(), c, w.cview(), ws);
  auto loss = [&] {
    emb.forward(idv, y.view(), c, ws);
    double acc = 0;
    for (index_t i = 0; i < y.size(); ++i) acc += y.data()[i] * w.data()[i];
    return acc;
  };
  test::GradCheckResult r;
  std::vector<double> g(emb.weight.grad.span().begin(), emb.weight.grad.span().end());
  test::check_elements("embedding_weight", emb.weight.value.span(), g, loss, r);
  INFO(r.worst);
  CHECK(r.max_rel_error < grad_tolerance);
  std::vector<std::int32_t> bad{7};
  CHECK_THROWS_WITH_AS(emb.forward(CVectorView<std::int32_t>(bad.data(), DynExtents<1>{1}), rows(y.view(), 0, 1), c,
                                   ws),
                       doctest::Contains("out of range [0, 7)"), ValueError);
}

TEST_CASE_TEMPLATE("RmsNorm gradients over the hidden and the sequence axis", Bk, reference, cpu) {
  RmsNorm<NormAxis::hidden, double, Bk> hidden_norm;
  auto r1 = test::gradcheck_sequence_layer(hidden_norm, 2, 3, 5, 3, 2.0);
  INFO(r1.worst);
  CHECK(r1.max_rel_error < grad_tolerance);
  RmsNorm<NormAxis::sequence, double, Bk> seq_norm;
  auto r2 = test::gradcheck_sequence_layer(seq_norm, 2, 3, 5, 4, 2.0);
  INFO(r2.worst);
  CHECK(r2.max_rel_error < grad_tolerance);
}

TEST_CASE_TEMPLATE("SwiGlu gradients", Bk, reference, cpu) {
  Rng rng(5);
  SwiGlu<6, 4, double, Bk> mlp;  // inter = round_up_256(16) = 256
  mlp.init(rng);
  auto r = test::gradcheck_sequence_layer(mlp, 2, 2, 6, 6);
  INFO(r.worst);
  CHECK(r.max_rel_error < grad_tolerance);
}

TEST_CASE_TEMPLATE("SelfAttention gradients, with and without RoPE", Bk, reference, cpu) {
  Rng rng(7);
  SelfAttention<8, 2, double, Bk> attn;
  attn.init(rng);
  auto r1 = test::gradcheck_sequence_layer(attn, 2, 5, 8, 8);
  INFO(r1.worst);
  CHECK(r1.max_rel_error < grad_tolerance);
  RotaryEmbedding<4, double, Bk> rope(16);
  attn.rope = &rope;
  auto r2 = test::gradcheck_sequence_layer(attn, 2, 5, 8, 9);
  INFO(r2.worst);
  CHECK(r2.max_rel_error < grad_tolerance);
}

TEST_CASE_TEMPLATE("TokenMlp (sequence mixer with its own residual and sequence-axis norm) gradients", Bk, reference,
                   cpu) {
  Rng rng(10);
  TokenMlp<5, 4, double, Bk> mixer;
  mixer.init(rng);
  auto r = test::gradcheck_sequence_layer(mixer, 2, 5, 3, 11);
  INFO(r.worst);
  CHECK(r.max_rel_error < grad_tolerance);
  // Without keeping the SwiGLU's cache (backward recomputes it), in one block of rows and in
  // blocks (the 6 rows of [B*D, S] in 2 blocks of 3, and in 3 blocks of 2).
  mixer.keep_rows_max = 0;
  for (index_t chunk : {4096, 4, 2}) {
    mixer.chunk_rows = chunk;
    auto rc = test::gradcheck_sequence_layer(mixer, 2, 5, 3, 11);
    INFO("recomputed, chunk_rows " << chunk << ": " << rc.worst);
    CHECK(rc.max_rel_error < grad_tolerance);
  }
}

TEST_CASE_TEMPLATE("Block and Stack gradients (attention and token-MLP mixers)", Bk, reference, cpu) {
  Rng rng(12);
  using AttBlock = Block<SelfAttention<8, 2, double, Bk>, SwiGlu<8, 4, double, Bk>>;
  using MlpBlock = Block<TokenMlp<4, 4, double, Bk>, SwiGlu<8, 4, double, Bk>>;
  Stack<AttBlock, 2> att;
  att.init(rng);
  RotaryEmbedding<4, double, Bk> rope(8);
  for (auto& l : att.layers) l.mixer.inner.rope = &rope;
  auto r1 = test::gradcheck_sequence_layer(att, 2, 4, 8, 13);
  INFO(r1.worst);
  CHECK(r1.max_rel_error < grad_tolerance);
  Stack<MlpBlock, 2> mlp;
  mlp.init(rng);
  auto r2 = test::gradcheck_sequence_layer(mlp, 2, 4, 8, 14);
  INFO(r2.worst);
  CHECK(r2.max_rel_error < grad_tolerance);
}

TEST_CASE("RotaryEmbedding: backward is the transpose of forward") {
  Rng rng(15);
  RotaryEmbedding<6, double, reference> rope(10);
  DynTensor<double, 2> x(7, 6), g(7, 6), fx(7, 6), bg(7, 6);
  test::fill_random(x.span(), rng);
  test::fill_random(g.span(), rng);
  reference::copy(x.cview(), fx.view());
  rope.forward(fx.view());
  reference::copy(g.cview(), bg.view());
  rope.backward(bg.view());
  // <R x, g> == <x, R^T g>
  CHECK(reference::dot(fx.cview(), g.cview()) == doctest::Approx(reference::dot(x.cview(), bg.cview())).epsilon(1e-12));
  // Rotation preserves norms.
  CHECK(reference::dot(fx.cview(), fx.cview()) == doctest::Approx(reference::dot(x.cview(), x.cview())).epsilon(1e-12));
}

TEST_CASE("Parameter names follow the reference state dict") {
  Stack<Block<TokenMlp<97, 4>, SwiGlu<512, 4>>, 2> net;
  std::vector<std::string> names;
  net.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); }, "L_level");
  REQUIRE(names.size() == 8);
  CHECK(names[0] == "L_level.layers.0.mlp_t.gate_up_proj.weight");
  CHECK(names[3] == "L_level.layers.0.mlp.down_proj.weight");
  // SPEC §1.11: per channel SwiGLU(512): 1,572,864 + 786,432; mlp_t over 97 positions: inter 512.
  CHECK(count_parameters(net.layers[0].mlp) == 1572864 + 786432);
  CHECK(count_parameters(net.layers[0].mixer) == 2 * 512 * 97 + 97 * 512);
  Block<SelfAttention<512, 8>, SwiGlu<512, 4>> att;
  CHECK(count_parameters(att.mixer) == 786432 + 262144);
}
