#pragma once
// The model configurations of the parity fixtures (tests/data/README.md): TRM-MLP and TRM-Att
// (trm_{mlp,att}_h64) and HRM (hrm_att_h64), hidden 64, 9x9, shared by the CPU parity tests and the
// GPU ones.
#include <trm/trm.hpp>

namespace trm::test {

struct MlpConfig {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 64, layers = 2;
  using mixer = TokenMlpMixer;
  using schedule = TrmRecursion<3, 2>;
  using halting = BceHalting<4>;
};
struct AttConfig {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 64, layers = 2;
  using mixer = AttentionMixer<2>;
  using schedule = TrmRecursion<3, 2>;
  using halting = BceHalting<4>;
};
struct HrmConfig {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 64, layers = 2;
  static constexpr ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = AttentionMixer<2>;  // RoPE by default
  using schedule = HrmRecursion<2, 2>;
  using halting = QLearningHalting<4>;
};
static_assert(ModelConfig<MlpConfig> && ModelConfig<AttConfig> && ModelConfig<HrmConfig>);

}  // namespace trm::test
