#pragma once
// The reference fixtures tests/data/{trm_mlp,trm_att,hrm_att}_h64.safetensors (written by
// tools/trm_reference.py; tensor names and semantics in tests/data/README.md): loading, the batch
// of one call, the trainer settings stored in `config.*`, and restarting a call from the
// reference's recorded carry.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <trm/trm.hpp>
#include <vector>

namespace trm::test {

// The fixtures' folder: compiled in, or $TRM_TEST_DATA_DIR (binaries built on one machine and run on
// another, e.g. a GPU machine, by tools/gpu_check.sh).
inline const std::filesystem::path data_dir = [] {
  const char* env = std::getenv("TRM_TEST_DATA_DIR");
  return std::filesystem::path(env && *env ? env : TRM_TEST_DATA_DIR);
}();

inline io::SafetensorsFile load_fixture(const std::string& file_name) {
  return io::SafetensorsFile::load(data_dir / file_name);
}

template <class T>
T fixture_config(const io::SafetensorsFile& f, const std::string& name) {
  return f.values<T>("config." + name).at(0);
}

// The batch of the single call (prefix "call.", call < 0) or the one offered to trajectory call
// `call` (prefix "traj.").
inline Batch batch_from(const io::SafetensorsFile& f, const std::string& prefix, index_t call = -1) {
  const index_t b = fixture_config<std::int32_t>(f, "batch_size"), l = fixture_config<std::int32_t>(f, "seq_len");
  const auto inputs = f.values<std::int32_t>(prefix + "inputs");
  const auto labels = f.values<std::int32_t>(prefix + "labels");
  const auto ids = f.values<std::int32_t>(prefix + "puzzle_identifiers");
  const std::size_t off = call < 0 ? 0 : std::size_t(call * b * l), idoff = call < 0 ? 0 : std::size_t(call * b);
  REQUIRE(inputs.size() >= off + std::size_t(b * l));
  REQUIRE(ids.size() >= idoff + std::size_t(b));
  Batch batch;
  batch.inputs.resize(b, l);
  batch.labels.resize(b, l);
  batch.puzzle_identifiers.resize(b);
  std::copy_n(inputs.begin() + std::ptrdiff_t(off), b * l, batch.inputs.data());
  std::copy_n(labels.begin() + std::ptrdiff_t(off), b * l, batch.labels.data());
  std::copy_n(ids.begin() + std::ptrdiff_t(idoff), b, batch.puzzle_identifiers.data());
  return batch;
}

// Schedule, sign-SGD, EMA and halting exploration (0 in every fixture: deterministic halting).
inline TrainOptions fixture_options(const io::SafetensorsFile& f) {
  TrainOptions o;
  o.schedule = LrSchedule{fixture_config<std::int32_t>(f, "lr_warmup_steps"), fixture_config<std::int32_t>(f, "total_steps"),
                          double(fixture_config<float>(f, "lr_min_ratio"))};
  o.puzzle_emb_lr = double(fixture_config<float>(f, "puzzle_emb_lr"));
  o.puzzle_emb_weight_decay = double(fixture_config<float>(f, "puzzle_emb_weight_decay"));
  o.ema_rate = double(fixture_config<float>(f, "ema_rate"));
  o.halt_exploration_prob = double(fixture_config<float>(f, "halt_exploration_prob"));
  REQUIRE(o.halt_exploration_prob == 0.0);
  return o;
}

// AdamATan2 as adam-atan2 0.0.3 (bias correction of m outside atan2).
inline AdamAtan2 fixture_adam(const io::SafetensorsFile& f) {
  REQUIRE(fixture_config<std::int32_t>(f, "adam_bc1_inside_atan2") == 0);
  return AdamAtan2{.lr = double(fixture_config<float>(f, "lr")),
                   .weight_decay = double(fixture_config<float>(f, "weight_decay")),
                   .beta1 = double(fixture_config<float>(f, "beta1")),
                   .beta2 = double(fixture_config<float>(f, "beta2"))};
}

// Sets the trainer's carry states to the reference's recorded carry after trajectory call k - 1
// (traj.carry_y / traj.carry_z, [calls, B, L+P, D]); halted / steps stay ours (checked exact).
template <class TrainerT>
void restart_from_recorded_carry(TrainerT& trainer, const std::vector<float>& carry_y, const std::vector<float>& carry_z,
                                 index_t k) {
  auto& c = trainer.carry();
  const std::size_t state = std::size_t(c.y.size());
  REQUIRE(std::size_t(c.z.size()) == state);
  REQUIRE(carry_y.size() >= std::size_t(k) * state);
  // upload: the carry may live on a device.
  upload(std::span<const float>(carry_y.data() + (k - 1) * state, state), c.y);
  upload(std::span<const float>(carry_z.data() + (k - 1) * state, state), c.z);
}

// GEMMs and elementwise ops on one thread for the guard's lifetime (the fixtures were made with
// one torch thread; see tolerances.hpp for why the trajectory tests fix the summation order).
struct OneGemmThread {
  int saved = cpu::num_threads();
  OneGemmThread() { cpu::set_num_threads(1); }
  ~OneGemmThread() { cpu::set_num_threads(saved); }
  OneGemmThread(const OneGemmThread&) = delete;
  OneGemmThread& operator=(const OneGemmThread&) = delete;
};

}  // namespace trm::test
