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
    detail::bce_halting_decide(max_steps, exploration_prob, in, rng, halted);
  }

  double loss(const HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
              std::span<float> dq_continue, double scale) const {
    return detail::bce_halting_loss(in, seq_correct, dq_halt, dq_continue, scale);
  }
};

}  // namespace trm
