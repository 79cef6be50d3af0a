#pragma once
// HRM's halting: ACT with Q-learning (SPEC §5; the TRM paper's "w/ ACT" ablation, which is TRM's
// no_ACT_continue = False path). After each supervision step, in training:
//   halted = steps >= N, or (N > 1) q_halt > q_continue; then BceHalting's exploration rule;
//   q_halt target     = the sequence is exactly right (BCE with logits, as BceHalting);
//   q_continue target = sigmoid(next_q_halt)                          if steps >= N,
//                       sigmoid(max(next_q_halt, next_q_continue))    otherwise,
// where next_q_* are the q logits of an extra, no-grad supervision step run from the NEW carry
// on the same data with the current weights (no replay buffer, no target network). The Trainer
// runs that extra forward because this policy sets needs_q_continue_target, hands the next
// logits to q_continue_target() and the resulting targets to loss() in
// HaltingInputs::target_q_continue. Loss = BCE(q_halt, correct) + BCE(q_continue, target), summed
// over rows; the Trainer weights the sum by 0.5 as the reference does (SPEC §3).
// With N = 1 the reference computes no target (no Q-learning), so neither does the Trainer.
#include <algorithm>
#include <span>
#include <vector>

#include "halting.hpp"

namespace trm {

template <index_t N = dynamic>
class QLearningHalting {
 public:
  static constexpr bool needs_q_continue_target = true;
  double exploration_prob = 0.1;

  constexpr QLearningHalting() = default;
  explicit QLearningHalting(index_t n_sup) : n_(n_sup, "QLearningHalting: N_sup") {}
  constexpr int max_steps() const { return n_.value(); }
  std::string describe() const { return "QLearningHalting<N_sup=" + std::to_string(max_steps()) + ">"; }

  void decide_training(const HaltingInputs& in, Rng& rng, std::span<std::uint8_t> halted) const {
    const int n_sup = max_steps();
    for (std::size_t r = 0; r < halted.size(); ++r) {
      bool h = in.steps[r] >= n_sup;
      if (n_sup > 1) h = h || in.q_halt[r] > in.q_continue[r];
      halted[r] = h;
    }
    apply_halt_exploration(in.steps, rng, halted, exploration_prob, n_sup);
  }

  // next: q logits of the extra forward from the new carry; next.steps = steps after this step.
  void q_continue_target(const HaltingInputs& next, std::span<float> target) const {
    const int n_sup = max_steps();
    for (std::size_t r = 0; r < target.size(); ++r) {
      const double q = next.steps[r] >= n_sup ? double(next.q_halt[r]) : std::max(double(next.q_halt[r]), double(next.q_continue[r]));
      target[r] = float(sigmoid(q));
    }
  }

  HaltingLoss loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
                   std::span<float> dq_continue, double scale) const {
    HaltingLoss total;
    total.q_halt = q_halt_bce_loss(in, seq_correct, dq_halt, scale);
    const bool has_target = !in.target_q_continue.empty();
    for (std::size_t r = 0; r < dq_halt.size(); ++r) {
      if (has_target) {
        const double xc = in.q_continue[r], tc = in.target_q_continue[r];
        total.q_continue += bce_with_logits(xc, tc);
        dq_continue[r] = float(scale * (sigmoid(xc) - tc));
      } else {
        dq_continue[r] = 0;
      }
    }
    return total;
  }

 private:
  [[no_unique_address]] Count<N> n_{};
};

}  // namespace trm
