// HRM parity with the PyTorch reference (tools/trm_reference.py --variant hrm, checked there
// against the official sapientinc/HRM code and the TRM repo's hrm.py; tests/data/README.md):
// fixture tests/data/hrm_att_h64.safetensors = Model<HrmConfig> below: hidden 64, H_level 2 +
// L_level 2 attention layers (2 heads, RoPE), H_cycles 2, L_cycles 2, puzzle_emb_len 1 (82 rows),
// QLearningHalting<4> with the extra no-grad forward (no_ACT_continue = False), exploration 0,
// batch 4, 9x9 grids, fp32.
//
// Tolerances: the same as tests/test_trm_parity.cpp's, named and justified once in
// tests/support/tolerances.hpp (with the spread measured across GEMM kernels); the checks both
// tests share are in tests/support/parity.hpp. Specific to HRM:
// - q_continue targets (sigmoids of the extra forward's q logits) per call: tol::outputs, like the
//   q logits; q_continue losses: like the other losses.
// - halted / steps / count exact: halting is decided by q_halt > q_continue here (rows 0-2 stop
//   after 2 steps from call 5 on, row 3 runs 4), with margins >= 9.6e-3 in the fixture, far above
//   the q logits' ~1e-6 differences.
// - the trajectory restarts call k from the reference's recorded carry of call k-1 on one GEMM
//   thread, as the TRM test does (reference vs official: 4.4e-6 free-running vs 1.5e-6 restarted).
#include <doctest/doctest.h>

#include <algorithm>
#include <trm/trm.hpp>

#include "support/fixture_configs.hpp"
#include "support/parity.hpp"

namespace {

using namespace trm;
using namespace trm::test;

constexpr index_t batch_size = 4;

io::SafetensorsFile load_hrm_fixture() {
  auto f = trm::test::load_fixture("hrm_att_h64.safetensors");
  // the file describes the model this test instantiates
  REQUIRE(f.values<std::int32_t>("config.arch_hrm")[0] == 1);
  REQUIRE(f.values<std::int32_t>("config.H_layers")[0] == HrmConfig::layers);
  REQUIRE(f.values<std::int32_t>("config.L_layers")[0] == HrmConfig::layers);
  REQUIRE(f.values<std::int32_t>("config.H_cycles")[0] == HrmConfig::schedule{}.h_cycles());
  REQUIRE(f.values<std::int32_t>("config.L_cycles")[0] == HrmConfig::schedule{}.l_cycles());
  REQUIRE(f.values<std::int32_t>("config.puzzle_emb_len")[0] == HrmConfig::options.puzzle_emb_len);
  REQUIRE(f.values<std::int32_t>("config.halt_max_steps")[0] == HrmConfig::halting{}.max_steps());
  REQUIRE(f.values<std::int32_t>("config.no_ACT_continue")[0] == 0);
  REQUIRE(f.values<std::int32_t>("config.pos_rope")[0] == 1);
  return f;
}

}  // namespace

TEST_CASE("hrm parity: one supervision step (outputs, z_H / z_L carry, Q targets, losses, every gradient)") {
  const auto f = load_hrm_fixture();
  Model<HrmConfig> model({.puzzle_ids = 3});  // the fixture's puzzle table has 3 rows
  load_model(model, f, {"weights."}, /*allow_extra=*/true);
  Trainer trainer(model, fixture_adam(f), fixture_options(f));
  const StepMetrics m = trainer.step(batch_from(f, "call."), /*update=*/false);
  // carry mapping: y <-> z_H ("call.y"), z <-> z_L ("call.z")
  check_call_outputs(trainer, f, m);
  const auto& target = trainer.target_q_continue();
  REQUIRE(target.size() == std::size_t(batch_size));
  const double d_target = rel_diff<float, float>(target, f.values<float>("call.target_q_continue"));
  MESSAGE("target_q_continue " << d_target);
  CHECK(d_target < tol::outputs);
  CHECK(m.q_continue_loss == doctest::Approx(f.values<float>("call.q_continue_loss")[0]).epsilon(tol::call_loss));
  const auto names = check_gradients(model, trainer, f);
  CHECK(names.size() == 20);  // embed, lm_head, q_head (2), 2 nets x 2 layers x 4 weights
  CHECK(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.starts_with("H_level."); }) == 8);
}

TEST_CASE("hrm parity: 20 training calls with Q-learning halting (restart from the recorded carry, one GEMM thread)") {
  OneGemmThread one_thread;
  const auto f = load_hrm_fixture();
  Model<HrmConfig> model({.puzzle_ids = 3});
  load_model(model, f, {"weights."}, true);
  Trainer trainer(model, fixture_adam(f), fixture_options(f));
  const auto ref_qc_loss = f.values<float>("traj.q_continue_loss");
  const auto ref_target = f.values<float>("traj.target_q_continue");
  double worst_target = 0;
  int q_halts = 0;
  run_trajectory(trainer, f, [&](index_t k, const StepMetrics& m) {
    CHECK(m.q_continue_loss == doctest::Approx(ref_qc_loss[k]).epsilon(tol::trajectory_loss));
    const double td = rel_diff<float, float>(trainer.target_q_continue(),
                                             std::span<const float>(ref_target).subspan(std::size_t(k * batch_size), batch_size));
    worst_target = std::max(worst_target, td);
    CHECK(td < tol::outputs);
    for (index_t r = 0; r < batch_size; ++r)
      q_halts += trainer.carry().halted[r] && trainer.carry().steps[r] < model.max_steps();
  });
  MESSAGE("worst q_continue target difference: " << worst_target);
  CHECK(q_halts > 0);  // the fixture exercises the learned halting (q_halt > q_continue), not only N_sup
  check_final_state(model, trainer, f);
}
