#pragma once
// Halting policies (SPEC §2.2, §5): after each supervision step they decide which sequences stop,
// and give the halting head's loss. In evaluation the reference always runs max_steps steps.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "../core/count.hpp"
#include "../core/rng.hpp"

namespace trm {

// Per-row inputs of a halting decision after a supervision step.
struct HaltingInputs {
  std::span<const float> q_halt;      // [B] q_halt logits
  std::span<const float> q_continue;  // [B] q_continue logits
  std::span<const std::int32_t> steps;  // [B] supervision steps of the sequence, this one included
  // [B] soft target of q_continue from the Trainer's extra no-grad forward (QLearningHalting, SPEC §5);
  // empty unless the policy sets needs_q_continue_target (and max_steps > 1).
  std::span<const float> target_q_continue = {};
  // [B * seq_len] row-major argmax token of every position after this step (the Trainer fills it),
  // for policies that look at the answer itself (examples/custom_halting.cpp).
  std::span<const std::int32_t> predictions = {};
};

// The halting loss of a policy that has two terms (QLearningHalting): it converts to their sum, so
// a policy may also return a plain double (= q_halt term only).
struct HaltingLoss {
  double q_halt = 0, q_continue = 0;
  operator double() const { return q_halt + q_continue; }
};

// BCE with logits, numerically stable: max(x,0) - x*t + log(1 + exp(-|x|)); d/dx = sigmoid(x) - t.
inline double bce_with_logits(double x, double target) {
  return std::max(x, 0.0) - x * target + std::log1p(std::exp(-std::abs(x)));
}
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// A halting policy is a value: the Model holds the one it was built with (its N_sup is part of the
// model's signature), and a Trainer works on its own copy, called non-const, so a policy may keep
// per-row state between calls (examples/custom_halting.cpp). N_sup is static or dynamic, as a
// schedule's counts: BceHalting<16> or BceHalting<>{16}.
//   h.max_steps()                    N_sup: supervision steps at most (training and evaluation)
//   H::needs_q_continue_target       true: the Trainer runs the extra no-grad step of Q-learning
//                                    and calls h.q_continue_target(next, target) (QLearningHalting)
//   h.describe()                     the policy and its counts as text (part of the signature)
//   h.decide_training(in, rng, halted)   halted[r] = 1 where row r stops after this step
//   h.loss(in, seq_correct, dq_halt, dq_continue, scale)
//                                    the halting loss summed over rows (double, or HaltingLoss for
//                                    two terms); its gradients times `scale` written to dq_*
template <class H>
concept HaltingPolicy =
    std::copyable<H> &&
    requires(H& h, const H& ch, HaltingInputs in, Rng& rng, std::span<std::uint8_t> halted,
             std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt, std::span<float> dq_continue,
             double scale) {
      { ch.max_steps() } -> std::convertible_to<int>;
      { H::needs_q_continue_target } -> std::convertible_to<bool>;
      { ch.describe() } -> std::convertible_to<std::string>;
      h.decide_training(in, rng, halted);
      { h.loss(in, seq_correct, dq_halt, dq_continue, scale) } -> std::convertible_to<double>;
    } &&
    (!H::needs_q_continue_target || requires(H& h, HaltingInputs next, std::span<float> target) {
      h.q_continue_target(next, target);
    });

// Always exactly N steps; no halting loss.
template <index_t N = dynamic>
class FixedSteps {
 public:
  static constexpr bool needs_q_continue_target = false;
  constexpr FixedSteps() = default;
  explicit FixedSteps(index_t n_sup) : n_(n_sup, "FixedSteps: N_sup") {}
  constexpr int max_steps() const { return n_.value(); }
  std::string describe() const { return "FixedSteps<N_sup=" + std::to_string(max_steps()) + ">"; }
  void decide_training(const HaltingInputs& in, Rng&, std::span<std::uint8_t> halted) const {
    for (std::size_t r = 0; r < halted.size(); ++r) halted[r] = in.steps[r] >= max_steps();
  }
  double loss(const HaltingInputs&, std::span<const std::uint8_t>, std::span<float> dq_halt,
              std::span<float> dq_continue, double) const {
    for (auto& v : dq_halt) v = 0;
    for (auto& v : dq_continue) v = 0;
    return 0.0;
  }

 private:
  [[no_unique_address]] Count<N> n_{};
};

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

// The q_halt term of the ACT policies: BCE(q_halt, sequence exactly correct) per row, summed.
inline double q_halt_bce_loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct,
                              std::span<float> dq_halt, double scale) {
  double total = 0;
  for (std::size_t r = 0; r < dq_halt.size(); ++r) {
    const double x = in.q_halt[r], t = seq_correct[r] ? 1.0 : 0.0;
    total += bce_with_logits(x, t);
    dq_halt[r] = float(scale * (sigmoid(x) - t));
  }
  return total;
}

// TRM's halting (no_ACT_continue): a row stops when q_halt > 0 or after N steps; with probability
// `exploration_prob` a row draws a minimum step count from {2..N} below which it may not stop.
// Loss: BCE(q_halt, sequence exactly correct), summed over rows.
template <index_t N = dynamic>
class BceHalting {
 public:
  static constexpr bool needs_q_continue_target = false;
  double exploration_prob = 0.1;

  constexpr BceHalting() = default;
  explicit BceHalting(index_t n_sup) : n_(n_sup, "BceHalting: N_sup") {}
  constexpr int max_steps() const { return n_.value(); }
  std::string describe() const { return "BceHalting<N_sup=" + std::to_string(max_steps()) + ">"; }

  void decide_training(const HaltingInputs& in, Rng& rng, std::span<std::uint8_t> halted) const {
    const int n = max_steps();
    for (std::size_t r = 0; r < halted.size(); ++r) {
      bool h = in.steps[r] >= n;
      if (n > 1) h = h || in.q_halt[r] > 0.0f;
      halted[r] = h;
    }
    apply_halt_exploration(in.steps, rng, halted, exploration_prob, n);
  }

  double loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
              std::span<float> dq_continue, double scale) const {
    for (auto& v : dq_continue) v = 0;
    return q_halt_bce_loss(in, seq_correct, dq_halt, scale);
  }

 private:
  [[no_unique_address]] Count<N> n_{};
};

// Learned early exit at inference (off by default, as the reference evaluates always N steps).
enum class EarlyExit { off, on };

}  // namespace trm
