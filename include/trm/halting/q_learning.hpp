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

// The reference's exploration rule, shared by the ACT policies: with probability `prob` a row
// draws a minimum step count uniformly from {2..max_steps} and may not halt before it. Two draws
// per row, all explore coins first, then all minimum steps (torch.rand_like, torch.randint_like).
inline void apply_halt_exploration(std::span<const std::int32_t> steps, Rng& rng, std::span<std::uint8_t> halted,
                                   double prob, int max_steps) {
  if (max_steps <= 1 || prob <= 0) return;
  const std::size_t b = halted.size();
  std::vector<std::uint8_t> explore(b);
  for (std::size_t r = 0; r < b; ++r) explore[r] = rng.bernoulli(prob);
  for (std::size_t r = 0; r < b; ++r) {
    const int min_steps = 2 + int(rng.below(std::uint64_t(max_steps - 1)));
    if (explore[r] && steps[r] < min_steps) halted[r] = 0;
  }
}

template <int N>
struct QLearningHalting {
  static_assert(N >= 1);
  static constexpr int max_steps = N;
  static constexpr bool needs_q_continue_target = true;
  double exploration_prob = 0.1;

  void decide_training(const HaltingInputs& in, Rng& rng, std::span<std::uint8_t> halted) const {
    for (std::size_t r = 0; r < halted.size(); ++r) {
      bool h = in.steps[r] >= N;
      if (N > 1) h = h || in.q_halt[r] > in.q_continue[r];
      halted[r] = h;
    }
    apply_halt_exploration(in.steps, rng, halted, exploration_prob, N);
  }

  // next: q logits of the extra forward from the new carry; next.steps = steps after this step.
  void q_continue_target(const HaltingInputs& next, std::span<float> target) const {
    for (std::size_t r = 0; r < target.size(); ++r) {
      const double q = next.steps[r] >= N ? double(next.q_halt[r]) : std::max(double(next.q_halt[r]), double(next.q_continue[r]));
      target[r] = float(sigmoid(q));
    }
  }

  HaltingLoss loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
                   std::span<float> dq_continue, double scale) const {
    HaltingLoss total;
    const bool has_target = !in.target_q_continue.empty();
    for (std::size_t r = 0; r < dq_halt.size(); ++r) {
      const double x = in.q_halt[r], t = seq_correct[r] ? 1.0 : 0.0;
      total.q_halt += bce_with_logits(x, t);
      dq_halt[r] = float(scale * (sigmoid(x) - t));
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
};

}  // namespace trm
