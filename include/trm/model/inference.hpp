#pragma once
// Inference: up to N_sup supervision steps from the initial states, forward only. By default every
// row runs all steps (the reference's evaluation, SPEC §2.3); with EarlyExit::on a row stops at
// the first step whose q_halt logit is > 0 (the learned halting the reference trains but does not
// use at evaluation, TRM issue #64), and reports how many steps it used.
#include <functional>
#include <vector>

#include "../halting/halting.hpp"
#include "model.hpp"

namespace trm {

struct SolveResult {
  DynTensor<std::int32_t, 2> predictions;  // [B, L] argmax tokens
  std::vector<int> steps_used;             // [B]
  std::vector<float> q_halt;               // [B] q_halt logit at the row's last step
};

// Called after every supervision step with (step, predictions of all rows, active flags), e.g. to
// trace how an answer changes.
using SolveTrace = std::function<void(int, const DynTensor<std::int32_t, 2>&, const std::vector<std::uint8_t>&)>;

template <class M>
class Solver {
 public:
  using S = typename M::scalar_type;
  using space = typename M::space;
  using schedule = typename M::schedule;

  // The model is only read: several solvers (one per thread) may share one const model.
  explicit Solver(const M& model) : model_(model) {}

  // max_steps = 0: the model's N_sup (its halting policy's max_steps()); more steps than the model
  // was trained with are allowed (test-time scaling).
  SolveResult solve(const Batch& batch, EarlyExit exit = EarlyExit::off, int max_steps = 0, const SolveTrace& trace = {}) {
    if (max_steps == 0) max_steps = model_.max_steps();
    if (max_steps < 1) throw ValueError("Solver::solve: max_steps must be >= 1, found " + std::to_string(max_steps));
    const index_t b = batch.size();
    x_.resize(b, M::total_len, M::hidden);
    model_.embed(batch, x_.view());
    y_.resize(b, M::total_len, M::hidden);
    z_.resize(b * index_t(M::num_latents), M::total_len, M::hidden);  // latents stacked along the batch axis
    std::vector<std::uint8_t> active(b, 1);
    model_.reset_states(active, y_.view(), z_.view());
    logits_.resize(b, M::seq_len, M::vocab);
    q_.resize(b, 2);
    SolveResult res;
    res.predictions.resize(b, M::seq_len);
    res.steps_used.assign(b, 0);
    res.q_halt.assign(b, 0.0f);
    for (int step = 1; step <= max_steps; ++step) {
      model_.recursion().forward(model_, tape_, x_.cview(), y_.view(), z_.view(), false);
      model_.heads(y_.cview(), logits_.view(), q_.view(), head_cache_);
      for (index_t r = 0; r < b; ++r) {
        if (!active[r]) continue;
        for (index_t t = 0; t < M::seq_len; ++t) {
          index_t best = 0;
          for (index_t k = 1; k < M::vocab; ++k)
            if (logits_(r, t, k) > logits_(r, t, best)) best = k;
          res.predictions(r, t) = std::int32_t(best);
        }
        res.steps_used[r] = step;
        res.q_halt[r] = float(q_(r, 0));
      }
      if (trace) trace(step, res.predictions, active);
      bool any = false;
      for (index_t r = 0; r < b; ++r) {
        if (active[r] && exit == EarlyExit::on && q_(r, 0) > S(0)) active[r] = 0;
        any = any || active[r];
      }
      if (!any) break;
    }
    return res;
  }

 private:
  const M& model_;
  typename schedule::template Tape<M> tape_;
  typename M::HeadCache head_cache_;
  DynTensor<S, 3, space> x_, y_, z_, logits_;
  DynTensor<S, 2, space> q_;
};

// Accuracy of predictions against labels (ignore label -100 skipped), as the reference's eval:
// exact = every supervised token right.
struct EvalMetrics {
  int count = 0;            // rows with at least one supervised label
  double token_accuracy = 0;  // mean over rows of the per-row token accuracy
  double exact_accuracy = 0;  // fraction of rows entirely right
  double mean_steps = 0;
};

inline EvalMetrics score_predictions(const DynTensor<std::int32_t, 2>& predictions, const DynTensor<std::int32_t, 2>& labels,
                                     const std::vector<int>& steps_used) {
  check_shape("score_predictions: labels", predictions.shape(), labels.shape());
  EvalMetrics m;
  double tok = 0, exact = 0, steps = 0;
  for (index_t r = 0; r < labels.extent(0); ++r) {
    int n = 0, ok = 0;
    for (index_t t = 0; t < labels.extent(1); ++t) {
      if (labels(r, t) == -100) continue;
      ++n;
      ok += predictions(r, t) == labels(r, t);
    }
    if (n == 0) continue;
    ++m.count;
    tok += double(ok) / n;
    exact += ok == n;
    steps += steps_used[r];
  }
  if (m.count) {
    m.token_accuracy = tok / m.count;
    m.exact_accuracy = exact / m.count;
    m.mean_steps = steps / m.count;
  }
  return m;
}

}  // namespace trm
