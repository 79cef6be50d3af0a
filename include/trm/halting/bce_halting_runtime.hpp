#pragma once
// TRM's halting (BceHalting, SPEC §2.2) with N_sup chosen at run time, for programs that pick it
// from a command line (the `trm` command line does). Same decisions, draws and loss as
// BceHalting<N>.
//
//   using halting = trm::BceHaltingRuntime<MyTag>;
//   halting::set_max_steps(4);                  // before training or solving
//
// max_steps is a process-wide setting of the policy type (a static member, like BceHalting's
// template argument; Solver::solve reads it as its default step count). Use a distinct Tag for
// models that need different values in one process.
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "halting.hpp"

namespace trm {

template <class Tag = void>
struct BceHaltingRuntime {
  static inline int max_steps = 16;
  static constexpr bool needs_q_continue_target = false;
  double exploration_prob = 0.1;

  static void set_max_steps(int n) {
    if (n < 1) throw ValueError("BceHaltingRuntime::set_max_steps: expected N_sup >= 1, found " + std::to_string(n));
    max_steps = n;
  }
  static std::string describe() { return "BceHalting<N_sup=" + std::to_string(max_steps) + ">"; }

  void decide_training(const HaltingInputs& in, Rng& rng, std::span<std::uint8_t> halted) const {
    const int N = max_steps;
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

  double loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
              std::span<float> dq_continue, double scale) const {
    double total = 0;
    for (std::size_t r = 0; r < dq_halt.size(); ++r) {
      const double x = in.q_halt[r], t = seq_correct[r] ? 1.0 : 0.0;
      total += bce_with_logits(x, t);
      dq_halt[r] = float(scale * (sigmoid(x) - t));
      dq_continue[r] = 0;
    }
    return total;
  }
};

}  // namespace trm
