#pragma once
// The recursive reasoning model of SPEC §1: input embedding (tokens + puzzle prefix, scaled by
// sqrt(D)), the reasoning net(s), the fixed initial states H_init / L_init, lm_head and q_head.
// How the net is applied (TRM's n/T recursion, HRM's cycles) is the schedule's business
// (recursion/), when a sequence stops is the halting policy's (halting/).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <utility>

#include "../core/concepts.hpp"
#include "../core/rng.hpp"
#include "../nn/attention.hpp"
#include "../nn/block.hpp"
#include "../nn/embedding.hpp"
#include "../nn/linear.hpp"
#include "../nn/rotary.hpp"
#include "../nn/swiglu.hpp"
#include "../nn/token_mlp.hpp"
#include "config.hpp"

namespace trm {

namespace detail {
template <class Mixer, index_t TotalLen, index_t Hidden, index_t Expansion, class T, class B>
struct mixer_layer;
template <index_t TotalLen, index_t Hidden, index_t Expansion, class T, class B>
struct mixer_layer<TokenMlpMixer, TotalLen, Hidden, Expansion, T, B> {
  using type = TokenMlp<TotalLen, Expansion, T, B>;
};
template <int Heads, index_t TotalLen, index_t Hidden, index_t Expansion, class T, class B>
struct mixer_layer<AttentionMixer<Heads>, TotalLen, Hidden, Expansion, T, B> {
  using type = SelfAttention<Hidden, Heads, T, B>;
};
template <class M>
constexpr index_t mixer_heads() {
  if constexpr (is_attention_mixer_v<M>) return M::heads; else return 1;
}
}  // namespace detail

// Batch of puzzles as token ids: inputs [batch, seq_len] and one puzzle id per row.
struct Batch {
  DynTensor<std::int32_t, 2> inputs;             // [B, L] tokens
  DynTensor<std::int32_t, 2> labels;             // [B, L] targets, ignore_label = not supervised
  DynTensor<std::int32_t, 1> puzzle_identifiers; // [B]
  index_t size() const { return inputs.extent(0); }

  // A batch of B = puzzle_identifiers.size() rows from row-major token spans of B * seq_len
  // values each. labels may be empty (inference: every label is ignore_label). Token and id
  // ranges are checked by the model that reads the batch.
  static Batch from_tokens(std::span<const std::int32_t> inputs, std::span<const std::int32_t> labels,
                           std::span<const std::int32_t> puzzle_identifiers, index_t seq_len) {
    const index_t b = index_t(puzzle_identifiers.size());
    if (seq_len < 1) throw ShapeError("Batch::from_tokens: expected seq_len >= 1, found " + std::to_string(seq_len));
    if (index_t(inputs.size()) != b * seq_len)
      throw ShapeError("Batch::from_tokens: expected " + std::to_string(b) + " x " + std::to_string(seq_len) + " = " +
                       std::to_string(b * seq_len) + " input tokens (one row per puzzle id), found " +
                       std::to_string(inputs.size()));
    if (!labels.empty() && labels.size() != inputs.size())
      throw ShapeError("Batch::from_tokens: expected as many labels as input tokens (" + std::to_string(inputs.size()) +
                       ") or none, found " + std::to_string(labels.size()));
    Batch batch;
    batch.inputs.resize(b, seq_len);
    batch.labels.resize(b, seq_len);
    batch.puzzle_identifiers.resize(b);
    std::copy(inputs.begin(), inputs.end(), batch.inputs.data());
    if (labels.empty())
      std::fill_n(batch.labels.data(), b * seq_len, ignore_label);
    else
      std::copy(labels.begin(), labels.end(), batch.labels.data());
    std::copy(puzzle_identifiers.begin(), puzzle_identifiers.end(), batch.puzzle_identifiers.data());
    return batch;
  }
};

// What a Model is built with at run time: the schedule and halting policy values (their counts
// when dynamic), the number of puzzle identifiers (a fact of the dataset or the checkpoint), and
// the initialisation seed. Designated initializers read well:
//   Model<Cfg> m({.schedule = TrmRecursion<>(3, 2), .halting = BceHalting<>(16), .puzzle_ids = 876406});
template <ModelConfig C>
struct ModelArgs {
  using config = C;
  typename C::schedule schedule{};
  typename C::halting halting{};
  index_t puzzle_ids = 1;
  std::uint64_t seed = 0;
};

static_assert(ModelBackend<cpu> && ModelBackend<reference>, "the host backends run whole models");

template <ModelConfig C, ModelBackend B = cpu, Scalar T = float>
class Model {
 public:
  using config = C;
  using traits = config_traits<C>;
  using backend_type = B;
  using scalar_type = T;
  using space = typename B::memory_space;
  using schedule = typename C::schedule;
  using halting = typename C::halting;

  static constexpr index_t seq_len = traits::seq_len, prefix_len = traits::prefix_len,
                           total_len = traits::total_len, hidden = traits::hidden, vocab = traits::vocab,
                           puzzle_emb_ndim = traits::puzzle_emb_ndim;
  static constexpr std::size_t num_nets = schedule::num_nets;
  // The carry is y [B, L+P, D] (the state the heads read: TRM's y, HRM's z_H, TrmSingleZ's only
  // state) and z [num_latents * B, L+P, D]: latent k occupies batch rows [k*B, (k+1)*B)
  // (TRM's z, HRM's z_L; empty for TrmSingleZ; K latents for TrmMultiScaleZ).
  static constexpr std::size_t num_latents = schedule::latent_states;

  using mixer_layer = typename detail::mixer_layer<typename C::mixer, total_len, hidden, traits::expansion, T, B>::type;
  using block_type = Block<mixer_layer, SwiGlu<hidden, traits::expansion, T, B>>;
  using net_type = Stack<block_type, traits::layers>;
  static constexpr bool uses_rope = traits::positions == PositionEncoding::rope;
  static constexpr bool uses_learned_positions = traits::positions == PositionEncoding::learned;
  static_assert(!uses_rope || is_attention_mixer_v<typename C::mixer>,
                "RoPE positions need the attention mixer (the token MLP has no q/k to rotate)");

  Embedding<vocab, hidden, T, B> embed_tokens;
  Linear<hidden, vocab, false, T, B> lm_head;
  Linear<hidden, 2, true, T, B> q_head;
  std::array<net_type, num_nets> nets;
  Param<T, space> embed_pos{uses_learned_positions ? std::vector<index_t>{total_len, hidden} : std::vector<index_t>{0, hidden}};
  // Buffers (not trained by the regular optimiser): the puzzle table [puzzle_ids, puzzle_emb_ndim]
  // (sign-SGD; absent when puzzle_emb_ndim = 0), the initial states.
  Param<T, space> puzzle_emb;
  Param<T, space> H_init{{hidden}};
  Param<T, space> L_init{{hidden}};
  // Fixed initial states of latents 1..K-1 when the schedule carries K > 1 latents (latent 0 uses
  // L_init); buffer names L2_init, L3_init, ... (the reference's trm_hier6 calls them L2..L6_init
  // and latent 0's L1_init).
  std::array<Param<T, space>, (num_latents > 1 ? num_latents - 1 : 0)> extra_L_init = make_extra_inits();

  explicit Model(ModelArgs<C> args)
      : puzzle_emb({checked_puzzle_ids(args.puzzle_ids), puzzle_emb_ndim}),
        schedule_(std::move(args.schedule)),
        halting_(std::move(args.halting)) {
    if (schedule_.net_calls_per_step() < 1)
      throw ValueError("Model: the schedule's counts were not given (" + schedule_.describe() +
                       "): construct a dynamic schedule with its counts, e.g. TrmRecursion<>(n, T)");
    if (halting_.max_steps() < 1)
      throw ValueError("Model: the halting policy's N_sup was not given (" + halting_.describe() +
                       "): construct a dynamic policy with it, e.g. BceHalting<>(16)");
    configure();
    Rng rng(args.seed);
    init(rng);
  }
  // Static schedule and policy, one puzzle identifier.
  explicit Model(std::uint64_t seed = 0) : Model(ModelArgs<C>{.seed = seed}) {}
  Model(const Model& o)
      : embed_tokens(o.embed_tokens), lm_head(o.lm_head), q_head(o.q_head), nets(o.nets), embed_pos(o.embed_pos),
        puzzle_emb(o.puzzle_emb), H_init(o.H_init), L_init(o.L_init), extra_L_init(o.extra_L_init),
        schedule_(o.schedule_), halting_(o.halting_) {
    configure();
  }
  Model& operator=(const Model& o) {
    schedule_ = o.schedule_;
    halting_ = o.halting_;
    embed_tokens = o.embed_tokens;
    lm_head = o.lm_head;
    q_head = o.q_head;
    nets = o.nets;
    embed_pos = o.embed_pos;
    puzzle_emb = o.puzzle_emb;
    H_init = o.H_init;
    L_init = o.L_init;
    extra_L_init = o.extra_L_init;
    configure();
    return *this;
  }

  // The reference's initialisation order and rules (SPEC §1.9): embeddings and linear weights
  // truncated LeCun normal, q_head weight 0 and bias -5, puzzle table 0, H_init/L_init std 1.
  // A model in another memory space than the host's is initialised on a host twin (the same draws)
  // and copied.
  void init(Rng& rng) {
    if constexpr (!std::is_same_v<space, host_space>) {
      Model<C, cpu, T> twin(ModelArgs<C>{schedule_, halting_, num_puzzle_ids(), 0});
      twin.init(rng);
      copy_state_from(twin);
      return;
    } else {
      init_on_host(rng);
    }
  }

  // Every parameter and buffer from a model of the same configuration and signature on any
  // backend (host <-> device, or cpu <-> reference). Throws ValueError naming both signatures
  // when they differ.
  template <class Other>
  void copy_state_from(const Other& other) {
    static_assert(std::is_same_v<typename Other::config, C> && std::is_same_v<typename Other::scalar_type, T>,
                  "Model::copy_state_from: the other model has another configuration or scalar type");
    if (other.signature() != signature())
      throw ValueError("Model::copy_state_from: the other model's signature differs:\n  expected: " + signature() +
                       "\n  found:    " + other.signature());
    std::map<std::string, DynTensor<T, 2, host_space>> host;
    auto take = [&](const std::string& name, const auto& p) { host[name] = download(p.value); };
    other.for_each_parameter(take);
    other.for_each_buffer(take);
    auto put = [&](const std::string& name, auto& p) { upload(host.at(name), p.value); };
    for_each_parameter(put);
    for_each_buffer(put);
  }
  // A copy of this model on backend B2 (e.g. trm::cuda from trm::cpu, and back).
  template <ModelBackend B2>
  Model<C, B2, T> to_backend() const {
    Model<C, B2, T> out(ModelArgs<C>{schedule_, halting_, num_puzzle_ids(), 0});
    out.copy_state_from(*this);
    return out;
  }

 private:
  void init_on_host(Rng& rng)
    requires std::same_as<space, host_space>
  {
    embed_tokens.init(rng);
    lm_head.init(rng);
    q_head.init(rng);
    q_head.weight.value.zero();
    fill_host(q_head.bias.value, T(-5));
    for (auto& n : nets) n.init(rng);
    if constexpr (uses_learned_positions)
      trunc_normal_init<T>(embed_pos.value.span(), 1.0 / std::sqrt(double(hidden)), rng);
    trunc_normal_init<T>(H_init.value.span(), 1.0, rng);
    trunc_normal_init<T>(L_init.value.span(), 1.0, rng);
    for (auto& p : extra_L_init) trunc_normal_init<T>(p.value.span(), 1.0, rng);
    puzzle_emb.value.zero();
  }

 public:

  // The values this model was built with.
  const schedule& recursion() const { return schedule_; }
  const halting& halting_policy() const { return halting_; }
  // Rows of the puzzle table (kept, with its shape, even when puzzle_emb_ndim = 0).
  index_t num_puzzle_ids() const { return puzzle_emb.shape[0]; }
  int max_steps() const { return halting_.max_steps(); }

  // Every choice that changes the meaning of the weights or how they are run, as text: saved in
  // checkpoints, compared when one is loaded (a static and a dynamic schedule of the same counts
  // give the same text).
  std::string signature() const {
    std::string s = "grid=" + std::to_string(traits::rows) + "x" + std::to_string(traits::cols) +
                    " vocab=" + std::to_string(vocab) + " hidden=" + std::to_string(hidden) +
                    " layers=" + std::to_string(traits::layers) + " expansion=" + std::to_string(traits::expansion) +
                    " prefix=" + std::to_string(prefix_len) + " puzzle_emb_ndim=" + std::to_string(puzzle_emb_ndim) +
                    " puzzle_ids=" + std::to_string(num_puzzle_ids());
    if constexpr (is_attention_mixer_v<typename C::mixer>)
      s += " mixer=attention(" + std::to_string(C::mixer::heads) + ")";
    else
      s += " mixer=token_mlp";
    s += std::string(" positions=") + (traits::positions == PositionEncoding::rope      ? "rope"
                                       : traits::positions == PositionEncoding::learned ? "learned"
                                                                                         : "none");
    if constexpr (uses_rope) s += " rope_theta=" + format_real(traits::rope_theta);
    s += " rms_norm_eps=" + format_real(traits::rms_norm_eps);
    s += " schedule=" + schedule_.describe() + " nets=" + std::to_string(num_nets) + " halting=" + halting_.describe();
    return s;
  }

  // Read-only visits (saving, comparing): f(name, const Param&).
  template <class F>
  void for_each_parameter(F&& f) const {
    const_cast<Model&>(*this).for_each_parameter([&](const std::string& n, const auto& p) { f(n, p); });
  }
  template <class F>
  void for_each_buffer(F&& f) const {
    const_cast<Model&>(*this).for_each_buffer([&](const std::string& n, const auto& p) { f(n, p); });
  }

  // Trainable parameters under the reference's state-dict names.
  template <class F>
  void for_each_parameter(F&& f) {
    embed_tokens.for_each_parameter(f, "embed_tokens");
    lm_head.for_each_parameter(f, "lm_head");
    q_head.for_each_parameter(f, "q_head");
    if constexpr (uses_learned_positions) f(std::string("embed_pos.embedding_weight"), embed_pos);
    for (std::size_t i = 0; i < num_nets; ++i) nets[i].for_each_parameter(f, schedule::net_name(i));
  }
  // Persistent buffers: saved in checkpoints, not updated by the regular optimiser.
  template <class F>
  void for_each_buffer(F&& f) {
    if constexpr (puzzle_emb_ndim > 0) f(std::string("puzzle_emb.weights"), puzzle_emb);
    f(std::string("H_init"), H_init);
    f(std::string("L_init"), L_init);
    for (std::size_t k = 0; k < extra_L_init.size(); ++k) f("L" + std::to_string(k + 2) + "_init", extra_L_init[k]);
  }

  index_t num_parameters() const {
    index_t n = 0;
    for_each_parameter([&](const std::string&, auto& p) { n += p.numel(); });
    return n;
  }

  // ---- input embedding ----------------------------------------------------------------------
  // x[b] = scale * [puzzle_emb[id_b] zero-padded to prefix_len * D values, as prefix_len rows;
  // embed_tokens[tokens_b]] (+ learned positions, times 1/sqrt(2)), scale = sqrt(D).
  // inputs [B, L] and puzzle_ids [B] are in the backend's memory space (checked on the host by
  // check_batch before they were copied there; the gathers check them again).
  void embed(CMatrixView<std::int32_t, space> inputs, CVectorView<std::int32_t, space> puzzle_ids, Tensor3View<T, space> x) const {
    const index_t b = inputs.extent(0);
    expect_shape("Model::embed", "inputs", inputs, {b, seq_len});
    expect_shape("Model::embed", "puzzle_ids", puzzle_ids, {b});
    expect_shape("Model::embed", "x", x, {b, total_len, hidden});
    if constexpr (prefix_len > 0) {
      B::fill(prefix_rows(x, prefix_len * hidden), T(0));
      if constexpr (puzzle_emb_ndim > 0) B::gather_rows(puzzle_emb.value.cview(), puzzle_ids, T(1), prefix_rows(x, puzzle_emb_ndim));
    }
    B::gather_rows3(embed_tokens.weight.value.cview(), inputs, T(1), token_rows(x));
    if constexpr (uses_learned_positions)
      for (index_t r = 0; r < b; ++r) {
        auto xr = slice0(x, r);  // [total_len, hidden]
        B::axpy(T(1), embed_pos.value.cview(), xr);
        B::scale(xr, T(0.707106781));
      }
    B::scale(as_matrix(x), embed_scale());
  }
  // A host batch (host backends): checked, then embedded.
  void embed(const Batch& batch, Tensor3View<T, space> x) const
    requires std::same_as<space, host_space>
  {
    check_batch(batch);
    embed(batch.inputs.cview(), batch.puzzle_identifiers.cview(), x);
  }

  // Backward of embed: token-table gradients accumulate into embed_tokens.weight.grad, learned
  // positions into embed_pos.grad, and the puzzle rows' gradients go to puzzle_row_grad
  // [B, puzzle_emb_ndim] (overwritten; the sign-SGD optimiser sums them per id).
  void embed_backward(CMatrixView<std::int32_t, space> inputs, CTensor3View<T, space> dx, MatrixView<T, space> puzzle_row_grad) {
    const index_t b = dx.extent(0);
    expect_shape("Model::embed_backward", "dx", dx, {b, total_len, hidden});
    expect_shape("Model::embed_backward", "inputs", inputs, {b, seq_len});
    expect_shape("Model::embed_backward", "puzzle_row_grad", puzzle_row_grad, {b, puzzle_emb_ndim});
    T scale = embed_scale();
    if constexpr (uses_learned_positions) scale *= T(0.707106781);
    B::scatter_add_rows3(token_rows(dx), inputs, scale, embed_tokens.weight.grad.view());
    if constexpr (puzzle_emb_ndim > 0) {
      B::fill(puzzle_row_grad, T(0));
      B::axpy(scale, prefix_rows(dx, puzzle_emb_ndim), puzzle_row_grad);
    }
    if constexpr (uses_learned_positions)
      for (index_t r = 0; r < b; ++r) B::axpy(scale, slice0(dx, r), embed_pos.grad.view());
  }
  void embed_backward(const Batch& batch, CTensor3View<T, space> dx, MatrixView<T, space> puzzle_row_grad)
    requires std::same_as<space, host_space>
  {
    check_shape("batch.inputs", std::vector<index_t>{dx.extent(0), seq_len}, batch.inputs.shape());
    embed_backward(batch.inputs.cview(), dx, puzzle_row_grad);
  }

  // ---- heads ----------------------------------------------------------------------------------
  // What heads_backward needs from heads, plus the heads' scratch (a Solver or Trainer keeps one).
  struct HeadCache {
    DynTensor<T, 2, space> q_input;  // y[:, 0] rows, [B, D]
    typename decltype(lm_head)::Cache lm_cache;
    typename decltype(q_head)::Cache q_cache;
    typename decltype(lm_head)::Workspace lm_ws;
    typename decltype(q_head)::Workspace q_ws;
    DynTensor<T, 2, space> dq_input;  // heads_backward's scratch: the gradient of q_input
  };
  // logits [B, L, V] from y[:, prefix:]; q [B, 2] (q_halt, q_continue) from y[:, 0].
  void heads(CTensor3View<T, space> y, Tensor3View<T, space> logits, MatrixView<T, space> q, HeadCache& c) const {
    const index_t b = y.extent(0);
    expect_shape("Model::heads", "y", y, {b, total_len, hidden});
    expect_shape("Model::heads", "logits", logits, {b, seq_len, vocab});
    expect_shape("Model::heads", "q", q, {b, 2});
    for (index_t r = 0; r < b; ++r)
      lm_head.forward(rows(slice0(y, r), prefix_len, seq_len), slice0(logits, r), c.lm_cache, c.lm_ws);
    c.q_input.resize(b, hidden);
    B::copy(prefix_rows(y, hidden), c.q_input.view());
    q_head.forward(c.q_input.cview(), q, c.q_cache, c.q_ws);
  }
  // dy (+)= gradients of the heads w.r.t. y; parameter gradients accumulate.
  // c: the HeadCache of the heads call being differentiated (its scratch members are written).
  void heads_backward(CTensor3View<T, space> y, HeadCache& c, CTensor3View<T, space> dlogits,
                      CMatrixView<T, space> dq, Tensor3View<T, space> dy) {
    const index_t b = y.extent(0);
    for (index_t r = 0; r < b; ++r)
      lm_head.backward(rows(slice0(y, r), prefix_len, seq_len), {}, c.lm_cache, slice0(dlogits, r),
                       rows(slice0(dy, r), prefix_len, seq_len), c.lm_ws);
    c.dq_input.resize(b, hidden);
    c.dq_input.zero();
    q_head.backward(c.q_input.cview(), {}, c.q_cache, dq, c.dq_input.view(), c.q_ws);
    B::axpy(T(1), c.dq_input.cview(), prefix_rows(dy, hidden));
  }

  // Rows with reset[r] start over: y = H_init, latent k of z = its init (L_init for k = 0),
  // broadcast to every position. z has num_latents * B rows (see num_latents). A schedule
  // without latents (TrmSingleZ) starts its only state y from L_init, as the reference does.
  template <class Mask>
  void reset_states(const Mask& reset, Tensor3View<T, space> y, Tensor3View<T, space> z) const {
    const index_t b = y.extent(0);
    if (z.extent(0) != b * index_t(num_latents))
      throw ShapeError("Model::reset_states: z must have num_latents * batch = " + std::to_string(num_latents) + " * " +
                       std::to_string(b) + " rows (one block of batch rows per latent state), found " +
                       std::to_string(z.extent(0)));
    const auto& y_init = num_latents == 0 ? L_init : H_init;
    for (index_t r = 0; r < b; ++r)
      if (reset[r]) {
        B::broadcast_rows(y_init.value.cview(), slice0(y, r));
        for (std::size_t k = 0; k < num_latents; ++k) B::broadcast_rows(latent_init(k).value.cview(), slice0(z, index_t(k) * b + r));
      }
  }
  const Param<T, space>& latent_init(std::size_t k) const { return k == 0 ? L_init : extra_L_init[k - 1]; }

  static T embed_scale() { return T(std::sqrt(double(hidden))); }

  // Shared RoPE tables (attention mixer only).
  using rope_type = RotaryEmbedding<hidden / detail::mixer_heads<typename C::mixer>(), T, B>;
  const rope_type& rope() const { return rope_; }

 private:
  void configure() {
    if constexpr (uses_rope) rope_.build(total_len, traits::rope_theta);
    for (auto& n : nets)
      for (auto& blk : n.layers) {
        blk.mlp.eps = T(traits::rms_norm_eps);
        if constexpr (is_attention_mixer_v<typename C::mixer>) {
          blk.mixer.eps = T(traits::rms_norm_eps);
          blk.mixer.inner.rope = uses_rope ? &rope_ : nullptr;
        } else {
          blk.mixer.eps = T(traits::rms_norm_eps);
        }
      }
  }
  static void fill_host(DynTensor<T, 2, space>& t, T v) { B::fill(t.view(), v); }
  // Checked before the table is allocated.
  static index_t checked_puzzle_ids(index_t n) {
    if (n < 1 || n > (index_t(1) << 31))
      throw ValueError("Model: expected puzzle_ids in [1, 2^31] (the number of puzzle identifiers, i.e. rows of the "
                       "puzzle table; id 0 is the reference's blank), found " + std::to_string(n));
    return n;
  }
  static std::string format_real(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
  }
  // The first `width` values of every sequence of a contiguous [B, total_len, hidden] tensor, as a
  // [B, width] matrix (row stride total_len * hidden): the puzzle prefix (width <= prefix_len * D),
  // or position 0, which the q head reads (width = D).
  template <class U>
  static MatrixView<U, space> prefix_rows(View<U, DynExtents<3>, space> x, index_t width) {
    return MatrixView<U, space>(x.data(), DynExtents<2>{x.extent(0), width}, {x.stride(0), 1});
  }
  // The token positions [B, seq_len, hidden] of a [B, total_len, hidden] tensor.
  template <class U>
  static View<U, DynExtents<3>, space> token_rows(View<U, DynExtents<3>, space> x) {
    return View<U, DynExtents<3>, space>(x.data() + prefix_len * x.stride(1), DynExtents<3>{x.extent(0), seq_len, x.extent(2)},
                                         x.strides());
  }
  static auto make_extra_inits() {
    std::array<Param<T, space>, (num_latents > 1 ? num_latents - 1 : 0)> a;
    for (auto& p : a) p = Param<T, space>({hidden});
    return a;
  }

 public:
  // The batch's shapes, puzzle ids and tokens against this model (on the host, where a batch is
  // made): ValueError naming the first bad entry.
  void check_batch(const Batch& batch) const {
    const index_t b = batch.size();
    check_shape("batch.inputs", std::vector<index_t>{b, seq_len}, batch.inputs.shape());
    check_shape("batch.puzzle_identifiers", std::vector<index_t>{b}, batch.puzzle_identifiers.shape());
    for (index_t r = 0; r < b; ++r) {
      const auto id = batch.puzzle_identifiers(r);
      if (id < 0 || id >= num_puzzle_ids())
        throw ValueError("batch.puzzle_identifiers[" + std::to_string(r) + "] = " + std::to_string(id) +
                         ": expected an id in [0, " + std::to_string(num_puzzle_ids()) +
                         ") (the model's puzzle table has " + std::to_string(num_puzzle_ids()) + " rows)");
    }
    for (index_t r = 0; r < b; ++r)
      for (index_t j = 0; j < seq_len; ++j) {
        auto t = batch.inputs(r, j);
        if (t < 0 || t >= vocab)
          throw ValueError("batch.inputs[" + std::to_string(r) + ", " + std::to_string(j) + "] = " + std::to_string(t) +
                           ": expected a token in [0, " + std::to_string(vocab) + ")");
      }
  }

 private:

  rope_type rope_;
  schedule schedule_;
  halting halting_;
};

}  // namespace trm
