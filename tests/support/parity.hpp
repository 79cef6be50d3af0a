#pragma once
// The checks that tests/test_trm_parity.cpp and tests/test_hrm_parity.cpp share: one training
// call against the fixture's call.* tensors, and the 20-call trajectory against traj.*.
// Bounds: tests/support/tolerances.hpp. The trainer may run on any backend: its tensors are
// downloaded to the host to be compared (a copy on the host backends).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "compare.hpp"
#include "fixtures.hpp"
#include "tolerances.hpp"

namespace trm::test {

template <class TrainerT>
std::vector<float> q_column(TrainerT& trainer, index_t col) {
  std::vector<float> out;
  const auto q = download(trainer.q());
  for (index_t r = 0; r < q.extent(0); ++r) out.push_back(q(r, col));
  return out;
}

// One call from the initial carry (update = false): outputs, carry, losses, flags.
template <class TrainerT>
void check_call_outputs(TrainerT& trainer, const io::SafetensorsFile& f, const StepMetrics& m) {
  const double d_logits = rel_diff<float, float>(download(trainer.logits()).span(), f.values<float>("call.logits"));
  const double d_qh = rel_diff<float, float>(q_column(trainer, 0), f.values<float>("call.q_halt_logits"));
  const double d_qc = rel_diff<float, float>(q_column(trainer, 1), f.values<float>("call.q_continue_logits"));
  const double d_y = rel_diff<float, float>(download(trainer.carry().y).span(), f.values<float>("call.y"));
  const double d_z = rel_diff<float, float>(download(trainer.carry().z).span(), f.values<float>("call.z"));
  MESSAGE("logits " << d_logits << ", q_halt " << d_qh << ", q_continue " << d_qc << ", carry y " << d_y << ", carry z " << d_z);
  CHECK(d_logits < tol::outputs);
  CHECK(d_qh < tol::outputs);
  CHECK(d_qc < tol::outputs);
  CHECK(d_y < tol::outputs);
  CHECK(d_z < tol::outputs);
  CHECK(m.lm_loss == doctest::Approx(f.values<float>("call.lm_loss")[0]).epsilon(tol::call_loss));
  CHECK(m.q_halt_loss == doctest::Approx(f.values<float>("call.q_halt_loss")[0]).epsilon(tol::call_loss));
  CHECK(m.total_loss == doctest::Approx(f.values<float>("call.total_loss")[0]).epsilon(tol::call_loss));
  const auto steps = f.values<std::int32_t>("call.steps");
  const auto halted = f.values<std::int32_t>("call.halted");
  REQUIRE(steps.size() == trainer.carry().steps.size());
  for (std::size_t r = 0; r < steps.size(); ++r) {
    CHECK(trainer.carry().steps[r] == steps[r]);
    CHECK(int(trainer.carry().halted[r]) == halted[r]);
  }
}

// Every trainable tensor's gradient and the puzzle rows' gradient; returns the names checked.
template <class ModelT, class TrainerT>
std::vector<std::string> check_gradients(ModelT& model, TrainerT& trainer, const io::SafetensorsFile& f) {
  std::vector<std::string> names;
  model.for_each_parameter([&](const std::string& name, auto& p) {
    INFO(name);
    const double gd = rel_diff<float, float>(download(p.grad).span(), f.values<float>("grad." + name));
    MESSAGE(name << " gradient relative difference " << gd);
    CHECK(gd < tol::gradients);
    names.push_back(name);
  });
  CHECK(rel_diff<float, float>(download(trainer.puzzle_row_grad()).span(), f.values<float>("grad.puzzle_emb.rows")) < tol::gradients);
  return names;
}

// The fixture's trajectory: call k restarts from the reference's recorded carry of call k - 1
// (tolerances.hpp, "the 20-call trajectory"); per call the loss, the learning rate, the counted
// rows, the exact accuracy and every row's halted / steps flag. `extra(k, metrics)` adds
// test-specific checks after call k. Returns the worst relative loss difference.
template <class TrainerT, class Extra>
double run_trajectory(TrainerT& trainer, const io::SafetensorsFile& f, Extra&& extra) {
  const auto ref_total = f.values<float>("traj.total_loss");
  const auto ref_halted = f.values<std::int32_t>("traj.halted");
  const auto ref_steps = f.values<std::int32_t>("traj.steps");
  const auto ref_lr = f.values<float>("traj.lr");
  const auto ref_exact = f.values<float>("traj.exact_accuracy");
  const auto ref_count = f.values<std::int32_t>("traj.count");
  const auto carry_y = f.values<float>("traj.carry_y");
  const auto carry_z = f.values<float>("traj.carry_z");
  const index_t calls = fixture_config<std::int32_t>(f, "num_traj_calls");
  const std::size_t b = std::size_t(fixture_config<std::int32_t>(f, "batch_size"));
  double worst = 0;
  for (index_t k = 0; k < calls; ++k) {
    if (k > 0) restart_from_recorded_carry(trainer, carry_y, carry_z, k);
    const StepMetrics m = trainer.step(batch_from(f, "traj.", k));
    INFO("call " << k);
    const double rel = std::abs(m.total_loss - ref_total[k]) / std::abs(ref_total[k]);
    worst = std::max(worst, rel);
    CHECK(rel < tol::trajectory_loss);
    CHECK(m.lr == doctest::Approx(ref_lr[k]).epsilon(tol::lr));
    CHECK(m.count == ref_count[k]);
    CHECK(double(m.exact_accuracy) / std::max(1, m.count) == doctest::Approx(ref_exact[k]));
    REQUIRE(trainer.carry().halted.size() == b);
    for (std::size_t r = 0; r < b; ++r) {
      CHECK(int(trainer.carry().halted[r]) == ref_halted[std::size_t(k) * b + r]);
      CHECK(trainer.carry().steps[r] == ref_steps[std::size_t(k) * b + r]);
    }
    extra(k, m);
  }
  MESSAGE("worst relative loss difference over " << calls << " calls: " << worst);
  return worst;
}

// Final weights, EMA and puzzle table after the trajectory (traj.final.*, traj.ema.*), element by
// element (tolerances.hpp, "Final state after the trajectory"): no element beyond what the
// optimiser could have moved it over the trajectory, and at most tol::max_moved_fraction of a
// tensor's elements moved away from the reference by more than a small fraction of a step.
template <class ModelT, class TrainerT>
void check_final_state(ModelT& model, TrainerT& trainer, const io::SafetensorsFile& f) {
  MESSAGE("GEMM kernels: " << std::string(cpu::blas_core()));
  const double lr = double(fixture_config<float>(f, "lr")), lr_e = double(fixture_config<float>(f, "puzzle_emb_lr"));
  const auto drift = tol::adam_atan2_drift(f.values<float>("traj.lr"), double(fixture_config<float>(f, "beta1")),
                                           double(fixture_config<float>(f, "beta2")));
  const double cap = drift.back(), ema_cap = tol::ema_drift(drift, double(fixture_config<float>(f, "ema_rate")));
  const double table_cap = tol::sign_sgd_drift(f.values<float>("traj.puzzle_emb_lr")).back();
  MESSAGE("per-element caps: weights " << cap / lr << " lr, EMA " << ema_cap / lr << " lr, puzzle table " << table_cap / lr_e
                                       << " lr_e");
  const MoveThreshold moved{tol::moved_lr * lr, tol::moved_ulps}, ema_moved{tol::ema_moved_lr * lr, tol::moved_ulps};
  auto check = [&](const std::string& what, const MovedDiff& d, double unit, const char* unit_name, double bound) {
    const std::string text = what + ": " + d.describe(unit, unit_name);
    MESSAGE(text);
    INFO(text);
    CHECK(d.max_abs <= bound);
    CHECK(double(d.moved) <= tol::max_moved_fraction * double(d.size));
  };
  model.for_each_parameter([&](const std::string& name, auto& p) {
    const auto w = moved_diff<float, float>(download(p.value).span(), f.values<float>("traj.final." + name), moved);
    check(name + " final", w, lr, "lr", cap);
    const auto e = moved_diff<float, float>(download(trainer.ema().shadow.at(name)).span(), f.values<float>("traj.ema." + name), ema_moved);
    check(name + " EMA", e, lr, "lr", ema_cap);
  });
  check("puzzle table final",
        moved_diff<float, float>(download(model.puzzle_emb.value).span(), f.values<float>("traj.final.puzzle_emb.weights"),
                                 MoveThreshold{tol::moved_lr * lr_e, tol::moved_ulps}),
        lr_e, "lr_e", table_cap);
}

// The whole trajectory check of a TRM fixture for Model<Cfg, B>: weights loaded, 20 calls
// restarted from the recorded carry, the final state element by element (one GEMM thread on the
// CPU: tolerances.hpp, "the 20-call trajectory").
template <class Cfg, class B = cpu>
void check_fixture_trajectory(const char* file_name) {
  OneGemmThread one_thread;
  const auto f = load_fixture(file_name);
  Model<Cfg, B> model({.puzzle_ids = 3});  // the fixture's puzzle table has 3 rows
  load_model(model, f, {"weights."}, true);
  Trainer trainer(model, fixture_adam(f), fixture_options(f));
  run_trajectory(trainer, f, [](index_t, const StepMetrics&) {});
  check_final_state(model, trainer, f);
}

}  // namespace trm::test
