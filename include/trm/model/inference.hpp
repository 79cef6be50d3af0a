#pragma once
// Inference: up to N_sup supervision steps from the initial states, forward only. By default every
// row runs all steps (the reference's evaluation, SPEC §2.3); with EarlyExit::on a row stops at
// the first step whose q_halt logit is > 0 (the learned halting the reference trains but does not
// use at evaluation, TRM issue #64), and reports how many steps it used.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
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
    SolveResult res;
    run(batch, exit, max_steps, trace, res, nullptr);
    return res;
  }

  // Both readings of one run: every row runs all max_steps steps (`all_steps`, the reference's
  // evaluation) and `early_exit` keeps each row's answer at its first step with q_halt > 0 (or the
  // last step), as solve(batch, EarlyExit::on) would give, at the cost of one run.
  struct BothResults {
    SolveResult all_steps, early_exit;
  };
  BothResults solve_both(const Batch& batch, int max_steps = 0) {
    BothResults both;
    run(batch, EarlyExit::off, max_steps, {}, both.all_steps, &both.early_exit);
    return both;
  }


 private:
  void run(const Batch& batch, EarlyExit exit, int max_steps, const SolveTrace& trace, SolveResult& res,
           SolveResult* early) {
    if (max_steps == 0) max_steps = model_.max_steps();
    if (max_steps < 1) throw ValueError("Solver::solve: max_steps must be >= 1, found " + std::to_string(max_steps));
    const index_t b = batch.size();
    model_.check_batch(batch);
    upload(batch.inputs, inputs_);
    upload(batch.puzzle_identifiers, puzzle_ids_);
    x_.resize(b, M::total_len, M::hidden);
    model_.embed(inputs_.cview(), puzzle_ids_.cview(), x_.view());
    y_.resize(b, M::total_len, M::hidden);
    z_.resize(b * index_t(M::num_latents), M::total_len, M::hidden);  // latents stacked along the batch axis
    std::vector<std::uint8_t> active(b, 1), halted(b, 0);
    model_.reset_states(active, y_.view(), z_.view());
    logits_.resize(b, M::seq_len, M::vocab);
    q_.resize(b, 2);
    res.predictions.resize(b, M::seq_len);
    res.steps_used.assign(b, 0);
    res.q_halt.assign(b, 0.0f);
    if (early) {
      early->predictions.resize(b, M::seq_len);
      early->steps_used.assign(b, 0);
      early->q_halt.assign(b, 0.0f);
    }
    for (int step = 1; step <= max_steps; ++step) {
      model_.recursion().forward(model_, tape_, x_.cview(), y_.view(), z_.view(), false);
      model_.heads(y_.cview(), logits_.view(), q_.view(), head_cache_);
      // The step's two copies to the host: q [B, 2] and the argmax tokens [B, L].
      predictions_dev_.resize(b, M::seq_len);
      M::backend_type::argmax_rows(logits_.cview(), predictions_dev_.view());
      download(predictions_dev_, predictions_host_);
      download(q_, q_host_);
      for (index_t r = 0; r < b; ++r) {
        if (!active[r]) continue;
        std::copy_n(&predictions_host_(r, 0), M::seq_len, &res.predictions(r, 0));
        res.steps_used[r] = step;
        res.q_halt[r] = float(q_host_(r, 0));
        if (early && !halted[r] && (q_host_(r, 0) > S(0) || step == max_steps)) {
          halted[r] = 1;
          std::copy_n(&res.predictions(r, 0), M::seq_len, &early->predictions(r, 0));
          early->steps_used[r] = step;
          early->q_halt[r] = res.q_halt[r];
        }
      }
      if (trace) trace(step, res.predictions, active);
      bool any = false;
      for (index_t r = 0; r < b; ++r) {
        if (active[r] && exit == EarlyExit::on && q_host_(r, 0) > S(0)) active[r] = 0;
        any = any || active[r];
      }
      if (!any) break;
    }
  }

  const M& model_;
  typename schedule::template Tape<M> tape_;
  typename M::HeadCache head_cache_;
  DynTensor<S, 3, space> x_, y_, z_, logits_;
  DynTensor<S, 2, space> q_;
  DynTensor<std::int32_t, 2, space> inputs_, predictions_dev_;
  DynTensor<std::int32_t, 1, space> puzzle_ids_;
  DynTensor<S, 2> q_host_;
  DynTensor<std::int32_t, 2> predictions_host_;
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

// What an evaluation measured, over `count` rows: exact = every supervised token right;
// cells = accuracy over the positions the answer changes (supervised, label != input token: the
// blanks of a Sudoku, the path of a maze), so copying the question scores 0 there; valid = the
// rate of answers a task accepts (any Sudoku solution, any shortest maze path), negative when no
// check was given. "early" = the answer at each row's first step with q_halt > 0.
struct EvalReport {
  std::int64_t count = 0;
  int max_steps = 0;
  double exact = 0, cells = 0, valid = -1;
  double exact_early = 0, cells_early = 0, valid_early = -1, mean_steps_early = 0;
  double seconds = 0;
  bool has_valid() const { return valid >= 0; }
};

// Accumulates an EvalReport over batches: each batch runs once (Solver::solve_both) and is scored
// in both readings. Use: Evaluator ev(model); for each batch ev.add(batch, rows, check); ev.report().
template <class M>
class Evaluator {
 public:
  explicit Evaluator(const M& model, int max_steps = 0)
      : solver_(model), max_steps_(max_steps > 0 ? max_steps : model.max_steps()) {}

  // The first `rows` rows of the batch are real examples (the rest padding, not scored).
  // check(r, predicted tokens of row r) -> bool: is that a valid answer to row r's question.
  template <class Check>
  void add(const Batch& batch, index_t rows, Check&& check) {
    add_impl(batch, rows, &check);
  }
  void add(const Batch& batch, index_t rows) { add_impl(batch, rows, static_cast<std::nullptr_t*>(nullptr)); }
  void add(const Batch& batch) { add(batch, batch.size()); }

  EvalReport report() const {
    EvalReport r;
    r.count = rows_;
    r.max_steps = max_steps_;
    r.seconds = seconds_;
    if (rows_ == 0) return r;
    const double n = double(rows_);
    r.exact = double(exact_[0]) / n;
    r.exact_early = double(exact_[1]) / n;
    r.cells = cells_total_ ? double(cells_right_[0]) / double(cells_total_) : 1.0;
    r.cells_early = cells_total_ ? double(cells_right_[1]) / double(cells_total_) : 1.0;
    if (checked_) {
      r.valid = double(valid_[0]) / n;
      r.valid_early = double(valid_[1]) / n;
    }
    r.mean_steps_early = double(steps_early_) / n;
    return r;
  }

 private:
  template <class Check>
  void add_impl(const Batch& batch, index_t rows, Check* check) {
    if (rows < 0 || rows > batch.size())
      throw ValueError("Evaluator::add: expected 0.." + std::to_string(batch.size()) + " real rows, found " +
                       std::to_string(rows));
    const auto t0 = std::chrono::steady_clock::now();
    const auto both = solver_.solve_both(batch, max_steps_);
    const index_t L = batch.inputs.extent(1);
    const SolveResult* res[2] = {&both.all_steps, &both.early_exit};
    for (index_t r = 0; r < rows; ++r) {
      for (int k = 0; k < 2; ++k) {
        bool exact = true;
        for (index_t t = 0; t < L; ++t) {
          const std::int32_t label = batch.labels(r, t);
          if (label == ignore_label) continue;
          const bool ok = res[k]->predictions(r, t) == label;
          exact = exact && ok;
          if (label != batch.inputs(r, t)) {
            cells_right_[k] += ok;
            if (k == 0) ++cells_total_;
          }
        }
        exact_[k] += exact;
        if constexpr (!std::is_same_v<Check, std::nullptr_t>) {
          const std::span<const std::int32_t> pred(&res[k]->predictions(r, 0), std::size_t(L));
          valid_[k] += bool((*check)(r, pred));
        }
      }
      steps_early_ += both.early_exit.steps_used[std::size_t(r)];
    }
    if constexpr (!std::is_same_v<Check, std::nullptr_t>) checked_ = true;
    rows_ += rows;
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  Solver<M> solver_;
  int max_steps_;
  std::int64_t rows_ = 0, cells_total_ = 0, steps_early_ = 0;
  std::int64_t exact_[2] = {0, 0}, cells_right_[2] = {0, 0}, valid_[2] = {0, 0};
  bool checked_ = false;
  double seconds_ = 0;
};

}  // namespace trm
