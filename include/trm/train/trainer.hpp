#pragma once
// The deep-supervision trainer with the reference's batched carry (SPEC §2.2, §3, §4): one call =
// one supervision step on every row of the carried batch, one optimiser step.
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../halting/halting.hpp"
#include "../model/model.hpp"
#include "../recursion/trm_recursion.hpp"
#include "losses.hpp"
#include "optim.hpp"

namespace trm {

struct TrainOptions {
  LrSchedule schedule{};          // warmup / cosine (steps counted from 1)
  double puzzle_emb_lr = 1e-4;    // sign-SGD of the puzzle table
  double puzzle_emb_weight_decay = 0.1;
  double ema_rate = 0.999;        // 0 disables the EMA
  LossType loss = LossType::stablemax_cross_entropy;
  double halt_exploration_prob = 0.1;
  std::uint64_t seed = 0;         // exploration draws
  // Every call checks its gradients (after backward, before the update) and the weights it wrote
  // (after the update) for NaN and infinity, and throws NonFiniteError naming the step, the
  // tensor and its first bad element. A diverging run stops at the step that went wrong, before
  // the bad values reach a checkpoint or the EMA. One read of every parameter and gradient per
  // call; its cost, measured, is in docs/PERFORMANCE.md.
  bool check_finite = true;
};

// A NaN or an infinity in a training call's gradients or updated weights (see
// TrainOptions::check_finite). A gradient found bad leaves the weights, the optimiser state, the
// EMA and the step count as they were before the call (the carry and the exploration RNG have
// moved on, as in any call); bad weights leave the model unusable (the EMA is that of the call
// before): reload a checkpoint.
class NonFiniteError : public ValueError {
 public:
  using ValueError::ValueError;
};

namespace detail {

// "element 37 [0, 37] = nan" of a tensor of logical (checkpoint) shape `shape`, C order.
template <class T>
std::string non_finite_element(std::ptrdiff_t flat, const std::vector<index_t>& shape, T value) {
  std::vector<index_t> idx(shape.size());
  auto rest = index_t(flat);
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] > 0 ? rest % shape[d] : 0;
    rest = shape[d] > 0 ? rest / shape[d] : 0;
  }
  return "element " + std::to_string(flat) + " " + format_shape(idx) + " = " +
         (std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf"));
}

}  // namespace detail

// Metrics of one training call, in the reference's train-log form: losses are batch sums, the
// others are sums over rows that halted with at least one supervised label (`count`). The mean_*
// members divide them by the rows they sum over (what the reference logs after its reduction).
struct StepMetrics {
  double total_loss = 0, lm_loss = 0, q_halt_loss = 0, q_continue_loss = 0;
  int batch_rows = 0;           // rows of the call (the losses' denominator)
  int count = 0;
  double accuracy = 0;          // sum over counted rows of per-row token accuracy
  int exact_accuracy = 0;       // counted rows entirely correct
  int q_halt_accuracy = 0;      // counted rows with (q_halt >= 0) == entirely correct
  long steps = 0;               // sum of steps over counted rows
  double lr = 0, puzzle_emb_lr = 0;

  double mean_total_loss() const { return per(total_loss, batch_rows); }
  double mean_lm_loss() const { return per(lm_loss, batch_rows); }
  double mean_accuracy() const { return per(accuracy, count); }
  double mean_exact_accuracy() const { return per(exact_accuracy, count); }
  double mean_q_halt_accuracy() const { return per(q_halt_accuracy, count); }
  double mean_steps() const { return per(double(steps), count); }

 private:
  static double per(double sum, int rows) { return rows > 0 ? sum / rows : 0.0; }
};

// The carried state between calls (detached): states, per-row step counts and halted flags, and
// the batch rows each sequence is working on. y [B, L+P, D] is the state the heads read; z holds
// the schedule's M::num_latents latent states stacked along the batch axis ([K*B, L+P, D]; see
// Model::num_latents): TRM (y, z), HRM (z_H, z_L), TrmSingleZ (z, empty), TrmMultiScaleZ (y, z_1..z_K).
template <class M>
struct Carry {
  using S = typename M::scalar_type;
  DynTensor<S, 3, typename M::space> y, z;
  std::vector<std::int32_t> steps;
  std::vector<std::uint8_t> halted;
  Batch data;
  bool empty() const { return halted.empty(); }
};

template <class M, Optimizer Opt = AdamAtan2>
  requires RecursionSchedule<typename M::schedule, M>
class Trainer {
 public:
  using S = typename M::scalar_type;
  using Bk = typename M::backend_type;
  using space = typename M::space;
  using schedule = typename M::schedule;
  using halting_type = typename M::halting;

  // The trainer works on its own copy of the model's halting policy (a policy may keep state) and
  // runs the model's schedule.
  Trainer(M& model, Opt opt, TrainOptions options = {})
      : model_(model), opt_(opt), options_(options), halting_(model.halting_policy()), rng_(options.seed) {
    if constexpr (requires { halting_.exploration_prob; }) halting_.exploration_prob = options.halt_exploration_prob;
    if (options_.ema_rate > 0) {
      ema_.rate = options_.ema_rate;
      ema_.init(model_);
    }
  }

  M& model() { return model_; }
  Carry<M>& carry() { return carry_; }
  const Carry<M>& carry() const { return carry_; }
  long step_count() const { return step_; }
  void set_step_count(long s) { step_ = s; }
  // A factor on the scheduled learning rates (dense and puzzle table) from the next call on: a
  // schedule the step count cannot express, e.g. a cosine over a wall-clock budget (trm::fit).
  void set_lr_scale(double scale) {
    if (!(scale >= 0.0) || !std::isfinite(scale))
      throw ValueError("Trainer::set_lr_scale: expected a finite factor >= 0, found " + std::to_string(scale));
    lr_scale_ = scale;
  }
  double lr_scale() const { return lr_scale_; }
  Ema<S, space>& ema() { return ema_; }
  const Ema<S, space>& ema() const { return ema_; }
  // A copy of the model with the EMA weights (what the reference evaluates and saves).
  M ema_model() const { return ema_.averaged_model(model_); }
  std::map<std::string, AdamState<S, space>>& optimizer_state() { return opt_state_; }
  Rng& rng() { return rng_; }
  const Opt& optimizer() const { return opt_; }
  halting_type& halting() { return halting_; }

  // Gradient of the puzzle rows of the last call, [B, D] (before the sign-SGD update).
  const DynTensor<S, 2, space>& puzzle_row_grad() const { return puzzle_row_grad_; }
  // Logits [B, L, V] and q [B, 2] of the last call (in the backend's memory space).
  const DynTensor<S, 3, space>& logits() const { return logits_; }
  const DynTensor<S, 2, space>& q() const { return q_; }
  // Argmax tokens [B * L] of the last call, and the q_continue targets [B] (empty unless the
  // halting policy needs them).
  const std::vector<std::int32_t>& predictions() const { return predictions_; }
  const std::vector<float>& target_q_continue() const { return target_q_continue_; }

  // One training call with an incoming batch (rows of halted sequences are replaced by it).
  // If `update` is false the gradients are left in the parameters and no optimiser step is taken.
  StepMetrics step(const Batch& incoming, bool update = true) {
    const index_t b = incoming.size();
    adopt(incoming);
    const auto& data = carry_.data;
    // The call's one copy of the batch into the backend's space (a plain copy on the host).
    model_.check_batch(data);
    upload(data.inputs, inputs_);
    upload(data.labels, labels_);
    upload(data.puzzle_identifiers, puzzle_ids_);
    x_.resize(b, M::total_len, M::hidden);
    model_.embed(inputs_.cview(), puzzle_ids_.cview(), x_.view());
    const auto& recursion = model_.recursion();
    recursion.forward(model_, tape_, x_.cview(), carry_.y.view(), carry_.z.view(), true);
    logits_.resize(b, M::seq_len, M::vocab);
    q_.resize(b, 2);
    model_.heads(carry_.y.cview(), logits_.view(), q_.view(), head_cache_);

    // Halting decision after this step (training mode), on the host from a copy of q [B, 2].
    download(q_, q_host_);
    std::vector<float> qh(b), qc(b);
    for (index_t r = 0; r < b; ++r) {
      qh[r] = float(q_host_(r, 0));
      qc[r] = float(q_host_(r, 1));
      carry_.steps[r] += 1;
    }
    predictions_dev_.resize(b, M::seq_len);
    Bk::argmax_rows(logits_.cview(), predictions_dev_.view());
    download(predictions_dev_, predictions_host_);
    predictions_.assign(predictions_host_.data(), predictions_host_.data() + b * M::seq_len);
    HaltingInputs hin{qh, qc, carry_.steps};
    hin.predictions = predictions_;
    halting_.decide_training(hin, rng_, carry_.halted);
    target_q_continue_.clear();
    if constexpr (halting_type::needs_q_continue_target) {
      if (halting_.max_steps() > 1) {
        q_continue_target(b);
        hin.target_q_continue = target_q_continue_;
      }
    }

    // Losses; backward of total / B.
    const double inv_b = 1.0 / double(b);
    dlogits_.resize(b, M::seq_len, M::vocab);
    auto tl = Bk::token_loss(options_.loss, logits_.cview(), labels_.cview(), dlogits_.view(), inv_b);
    std::vector<float> dqh(b), dqc(b);
    const auto q_loss = halting_.loss(hin, tl.seq_correct, dqh, dqc, 0.5 * inv_b);
    double q_halt_loss = double(q_loss), q_continue_loss = 0;
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(q_loss)>, HaltingLoss>) {
      q_halt_loss = q_loss.q_halt;
      q_continue_loss = q_loss.q_continue;
    }
    dq_host_.resize(b, 2);
    for (index_t r = 0; r < b; ++r) {
      dq_host_(r, 0) = S(dqh[r]);
      dq_host_(r, 1) = S(dqc[r]);
    }
    upload(dq_host_, dq_);
    StepMetrics m;
    m.batch_rows = int(b);
    m.lm_loss = tl.loss;
    m.q_halt_loss = q_halt_loss;
    m.q_continue_loss = q_continue_loss;
    m.total_loss = tl.loss + 0.5 * (q_halt_loss + q_continue_loss);
    for (index_t r = 0; r < b; ++r)
      if (carry_.halted[r] && tl.count[r] > 0) {
        m.count += 1;
        m.accuracy += tl.accuracy[r];
        m.exact_accuracy += tl.seq_correct[r];
        m.q_halt_accuracy += (qh[r] >= 0.0f) == bool(tl.seq_correct[r]);
        m.steps += carry_.steps[r];
      }

    dy_.resize(b, M::total_len, M::hidden);
    dy_.zero();
    model_.heads_backward(carry_.y.cview(), head_cache_, dlogits_.cview(), dq_.cview(), dy_.view());
    dx_.resize(b, M::total_len, M::hidden);
    dx_.zero();
    recursion.backward(model_, tape_, dy_.cview(), dx_.view());
    puzzle_row_grad_.resize(b, M::puzzle_emb_ndim);
    model_.embed_backward(inputs_.cview(), dx_.cview(), puzzle_row_grad_.view());
    if (options_.check_finite) check_gradients();

    ++step_;
    m.lr = options_.schedule(opt_.lr, step_) * lr_scale_;
    m.puzzle_emb_lr = options_.schedule(options_.puzzle_emb_lr, step_) * lr_scale_;
    if (update) {
      if constexpr (M::puzzle_emb_ndim > 0)
        SignSgd{options_.puzzle_emb_lr, options_.puzzle_emb_weight_decay}.template update<Bk>(
            model_.puzzle_emb.value, data.puzzle_identifiers.span(), puzzle_row_grad_, m.puzzle_emb_lr, segments_);
      model_.for_each_parameter([&](const std::string& name, auto& p) {
        opt_.template update<Bk>(p.value, p.grad, opt_state_[name], m.lr, step_);
        p.zero_grad();
      });
      // Before the EMA: its shadow keeps the average of the last good weights.
      if (options_.check_finite) check_weights();
      if (options_.ema_rate > 0) ema_.update(model_);
    }
    return m;
  }

  // Replace the carry (e.g. to restart from a recorded state).
  void set_carry(Carry<M> c) { carry_ = std::move(c); }

 private:
  // The call about to be counted (step_ + 1): gradients of the dense parameters and of the
  // puzzle rows the batch used. A bad one is reported before anything is updated, and the
  // gradients are cleared so that the trainer could go on with another batch.
  void check_gradients() {
    const long call = step_ + 1;
    auto fail = [&](const std::string& what) {
      model_.for_each_parameter([](const std::string&, auto& p) { p.zero_grad(); });
      throw NonFiniteError("Trainer::step: step " + std::to_string(call) + ": " + what +
                           "; the weights were not updated (a diverging run: lower the learning rate, check the data)");
    };
    model_.for_each_parameter([&](const std::string& name, auto& p) {
      if (const auto i = Bk::first_non_finite(p.grad.cview()); i >= 0)
        fail("the gradient of '" + name + "' " + format_shape(p.shape) + " is not finite: " +
             detail::non_finite_element(i, p.shape, download_element(p.grad, index_t(i))));
    });
    if constexpr (M::puzzle_emb_ndim > 0) {
      if (const auto i = Bk::first_non_finite(puzzle_row_grad_.cview()); i >= 0) {
        const index_t row = index_t(i) / M::puzzle_emb_ndim, col = index_t(i) % M::puzzle_emb_ndim;
        const index_t id = carry_.data.puzzle_identifiers(row);
        fail("the gradient of 'puzzle_emb.weights' (puzzle " + std::to_string(id) + ", batch row " + std::to_string(row) +
             ") is not finite: " +
             detail::non_finite_element(index_t(id) * M::puzzle_emb_ndim + col, model_.puzzle_emb.shape,
                                        download_element(puzzle_row_grad_, index_t(i))));
      }
    }
  }

  // The weights the update of call step_ wrote: the dense parameters and the puzzle table.
  void check_weights() {
    auto check = [&](const std::string& name, const auto& p) {
      if (const auto i = Bk::first_non_finite(p.value.cview()); i >= 0)
        throw NonFiniteError("Trainer::step: step " + std::to_string(step_) + ": the update made weight '" + name + "' " +
                             format_shape(p.shape) + " non-finite: " +
                             detail::non_finite_element(i, p.shape, download_element(p.value, index_t(i))) +
                             " (finite gradients: check the optimiser settings, e.g. beta1 < 1, and the learning rate); "
                             "the model is unusable, reload a checkpoint");
    };
    model_.for_each_parameter(check);
    if constexpr (M::puzzle_emb_ndim > 0) check(std::string("puzzle_emb.weights"), model_.puzzle_emb);
  }

  // Q-learning target (SPEC §5): one more supervision step, without gradient, from copies of the
  // new carry on the same data and weights; the policy turns its q logits into the targets.
  void q_continue_target(index_t b) {
    next_y_.resize(b, M::total_len, M::hidden);
    next_z_.resize(carry_.z.extent(0), M::total_len, M::hidden);
    Bk::copy(as_matrix(carry_.y.cview()), as_matrix(next_y_.view()));
    if (next_z_.size() > 0) Bk::copy(as_matrix(carry_.z.cview()), as_matrix(next_z_.view()));
    model_.recursion().forward(model_, next_tape_, x_.cview(), next_y_.view(), next_z_.view(), false);
    next_logits_.resize(b, M::seq_len, M::vocab);
    next_q_.resize(b, 2);
    model_.heads(next_y_.cview(), next_logits_.view(), next_q_.view(), next_head_cache_);
    download(next_q_, q_host_);
    std::vector<float> nqh(b), nqc(b);
    for (index_t r = 0; r < b; ++r) {
      nqh[r] = float(q_host_(r, 0));
      nqc[r] = float(q_host_(r, 1));
    }
    target_q_continue_.resize(std::size_t(b));
    // Guarded so that explicit instantiations of a Trainer whose policy has no Q-continue target
    // (BceHalting, FixedSteps) still compile this member.
    if constexpr (halting_type::needs_q_continue_target)
      halting_.q_continue_target(HaltingInputs{nqh, nqc, carry_.steps}, target_q_continue_);
  }

  // Rows whose sequence halted take the incoming row and restart from H_init / L_init.
  void adopt(const Batch& incoming) {
    const index_t b = incoming.size();
    check_shape("Trainer::step: batch.labels", std::vector<index_t>{b, M::seq_len}, incoming.labels.shape());
    if (carry_.empty()) {
      carry_.y.resize(b, M::total_len, M::hidden);
      carry_.z.resize(b * index_t(M::num_latents), M::total_len, M::hidden);
      carry_.steps.assign(b, 0);
      carry_.halted.assign(b, 1);
      carry_.data = incoming;
    } else if (carry_.data.size() != b) {
      throw ShapeError("Trainer::step: the carried batch has " + std::to_string(carry_.data.size()) +
                       " rows, the incoming batch " + std::to_string(b) + ": the batch size is fixed for a run");
    }
    for (index_t r = 0; r < b; ++r) {
      if (!carry_.halted[r]) continue;
      carry_.steps[r] = 0;
      for (index_t j = 0; j < M::seq_len; ++j) {
        carry_.data.inputs(r, j) = incoming.inputs(r, j);
        carry_.data.labels(r, j) = incoming.labels(r, j);
      }
      carry_.data.puzzle_identifiers(r) = incoming.puzzle_identifiers(r);
    }
    model_.reset_states(carry_.halted, carry_.y.view(), carry_.z.view());
  }

  M& model_;
  Opt opt_;
  TrainOptions options_;
  halting_type halting_;
  Rng rng_;
  Ema<S, space> ema_;
  std::map<std::string, AdamState<S, space>> opt_state_;
  long step_ = 0;
  double lr_scale_ = 1.0;
  Carry<M> carry_;
  typename schedule::template Tape<M> tape_;
  typename M::HeadCache head_cache_;
  DynTensor<S, 3, space> x_, logits_, dlogits_, dy_, dx_;
  DynTensor<S, 2, space> q_, dq_, puzzle_row_grad_;
  // The carried batch in the backend's space, uploaded once per call.
  DynTensor<std::int32_t, 2, space> inputs_, labels_, predictions_dev_;
  DynTensor<std::int32_t, 1, space> puzzle_ids_;
  PuzzleRowSegmentBuffers<space> segments_;
  // The host side of the per-call copies: q [B, 2] down, its gradient up, the argmax tokens down.
  DynTensor<S, 2> q_host_, dq_host_;
  DynTensor<std::int32_t, 2> predictions_host_;
  std::vector<std::int32_t> predictions_;
  // the Q-learning target's extra forward (own tape and head cache: the recorded ones stay intact)
  typename schedule::template Tape<M> next_tape_;
  typename M::HeadCache next_head_cache_;
  DynTensor<S, 3, space> next_y_, next_z_, next_logits_;
  DynTensor<S, 2, space> next_q_;
  std::vector<float> target_q_continue_;
};

}  // namespace trm
