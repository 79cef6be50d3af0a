#pragma once
// Halting policies (SPEC §2.2, §5): after each supervision step they decide which sequences stop,
// and give the halting head's loss. In evaluation the reference always runs max_steps steps.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

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

// The policy object is owned by the Trainer and called non-const, so a policy may keep per-row
// state between calls (examples/custom_halting.cpp). A policy with needs_q_continue_target = true
// also provides q_continue_target(next, target) (see QLearningHalting).
template <class H>
concept HaltingPolicy = requires(H& h, HaltingInputs in, Rng& rng, std::span<std::uint8_t> halted,
                                 std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
                                 std::span<float> dq_continue, double scale) {
  { H::max_steps } -> std::convertible_to<int>;
  { H::needs_q_continue_target } -> std::convertible_to<bool>;
  // training decision: halted[r] = 1 where row r stops after this step
  h.decide_training(in, rng, halted);
  // the halting loss (summed over rows), and its gradients times `scale` written to dq_*
  { h.loss(in, seq_correct, dq_halt, dq_continue, scale) } -> std::convertible_to<double>;
};

// Always exactly N steps; no halting loss.
template <int N>
struct FixedSteps {
  static_assert(N >= 1);
  static constexpr int max_steps = N;
  static constexpr bool needs_q_continue_target = false;
  void decide_training(const HaltingInputs& in, Rng&, std::span<std::uint8_t> halted) const {
    for (std::size_t r = 0; r < halted.size(); ++r) halted[r] = in.steps[r] >= N;
  }
  double loss(const HaltingInputs&, std::span<const std::uint8_t>, std::span<float> dq_halt,
              std::span<float> dq_continue, double) const {
    for (auto& v : dq_halt) v = 0;
    for (auto& v : dq_continue) v = 0;
    return 0.0;
  }
};

// TRM's halting (no_ACT_continue): a row stops when q_halt > 0 or after N steps; with probability
// `exploration_prob` a row draws a minimum step count from {2..N} below which it may not stop.
// Loss: BCE(q_halt, sequence exactly correct), summed over rows.
namespace detail {
// BceHalting's rules with N_sup as a value, shared by BceHalting<N> and BceHaltingRuntime.
inline void bce_halting_decide(int N, double exploration_prob, const HaltingInputs& in, Rng& rng,
                               std::span<std::uint8_t> halted) {
  const std::size_t b = halted.size();
  for (std::size_t r = 0; r < b; ++r) {
    bool h = in.steps[r] >= N;
    if (N > 1) h = h || in.q_halt[r] > 0.0f;
    halted[r] = h;
  }
  if (N > 1 && exploration_prob > 0) {
    // Two draws per row, as the reference: first all explore coins, then all minimum steps.
    std::vector<std::uint8_t> explore(b);
    for (std::size_t r = 0; r < b; ++r) explore[r] = rng.bernoulli(exploration_prob);
    for (std::size_t r = 0; r < b; ++r) {
      int min_steps = 2 + int(rng.below(std::uint64_t(N - 1)));
      if (explore[r] && in.steps[r] < min_steps) halted[r] = 0;
    }
  }
}

inline double bce_halting_loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct,
                               std::span<float> dq_halt, std::span<float> dq_continue, double scale) {
  double total = 0;
  for (std::size_t r = 0; r < dq_halt.size(); ++r) {
    const double x = in.q_halt[r], t = seq_correct[r] ? 1.0 : 0.0;
    total += bce_with_logits(x, t);
    dq_halt[r] = float(scale * (sigmoid(x) - t));
    dq_continue[r] = 0;
  }
  return total;
}
}  // namespace detail

template <int N>
struct BceHalting {
  static_assert(N >= 1);
  static constexpr int max_steps = N;
  static constexpr bool needs_q_continue_target = false;
  double exploration_prob = 0.1;

  void decide_training(const HaltingInputs& in, Rng& rng, std::span<std::uint8_t> halted) const {
    detail::bce_halting_decide(N, exploration_prob, in, rng, halted);
  }

  double loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
              std::span<float> dq_continue, double scale) const {
    return detail::bce_halting_loss(in, seq_correct, dq_halt, dq_continue, scale);
  }
};

// Learned early exit at inference (off by default, as the reference evaluates always N steps).
enum class EarlyExit { off, on };

}  // namespace trm
