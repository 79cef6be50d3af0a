#pragma once
// The whole training state in one safetensors file: weights and buffers, EMA shadow, optimiser
// moments, step counter, RNG state and the batched carry (states, step counts, halted flags and
// the rows being worked on). Resuming from it reproduces the uninterrupted run bit for bit on the
// CPU (same thread count). Loading is all-or-nothing: everything is validated and staged first.
#include <bit>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../train/trainer.hpp"
#include "checkpoint.hpp"
#include "safetensors.hpp"

namespace trm {

namespace detail {
template <class T, class Ext, MemorySpace S>
std::vector<std::int64_t> shape64(const Tensor<T, Ext, S>& t) {
  auto s = t.shape();
  return {s.begin(), s.end()};
}

}  // namespace detail

template <class M, class Opt>
void save_train_state(Trainer<M, Opt>& trainer, const std::filesystem::path& path,
                      const std::map<std::string, std::string>& extra_metadata = {}) {
  using S = typename M::scalar_type;
  static_assert(std::is_same_v<S, float>, "train states are stored in float32");
  io::SafetensorsFile file;
  file.metadata = extra_metadata;  // as save_model: the trm.* keys below win
  file.metadata["trm.kind"] = "train_state";
  file.metadata["trm.signature"] = trainer.model().signature();
  file.metadata["trm.optimizer"] = Opt::name;
  M& model = trainer.model();
  add_state(file, model, "model.");
  auto add_tensor = [&](const std::string& name, const auto& t) {
    using V = typename std::remove_cvref_t<decltype(t)>::value_type;
    detail::with_host_values(t, [&](std::span<const V> v) { file.add<V>(name, detail::shape64(t), v); });
  };
  if (!trainer.ema().shadow.empty())
    model.for_each_parameter([&](const std::string& n, auto&) { add_tensor("ema." + n, trainer.ema().shadow.at(n)); });
  for (auto& [n, st] : trainer.optimizer_state()) {
    add_tensor("optim.m." + n, st.m);
    add_tensor("optim.v." + n, st.v);
  }
  const std::int64_t step = trainer.step_count();
  file.add<std::int64_t>("state.step", {1}, std::span<const std::int64_t>(&step, 1));
  std::array<std::int64_t, 4> rng{};
  auto rs = trainer.rng().state();
  for (int i = 0; i < 4; ++i) rng[i] = std::bit_cast<std::int64_t>(rs[i]);
  file.add<std::int64_t>("state.rng", {4}, std::span<const std::int64_t>(rng));
  const auto& c = trainer.carry();
  if (!c.empty()) {
    add_tensor("carry.y", c.y);
    add_tensor("carry.z", c.z);
    const std::int64_t b = std::int64_t(c.steps.size());
    file.add<std::int32_t>("carry.steps", {b}, std::span<const std::int32_t>(c.steps));
    file.add<std::uint8_t>("carry.halted", {b}, std::span<const std::uint8_t>(c.halted));
    add_tensor("carry.inputs", c.data.inputs);
    add_tensor("carry.labels", c.data.labels);
    add_tensor("carry.puzzle_identifiers", c.data.puzzle_identifiers);
  }
  file.save(path);
}

// Restores a state saved by save_train_state into a trainer of the same model configuration and
// optimiser. Throws io::FormatError (naming what was expected and found) and leaves the trainer
// and its model untouched on any mismatch.
template <class M, class Opt>
void load_train_state(Trainer<M, Opt>& trainer, const std::filesystem::path& path) {
  using S = typename M::scalar_type;
  using space = typename M::space;
  constexpr bool on_host = std::is_same_v<space, host_space>;
  const auto file = io::SafetensorsFile::load(path);
  detail::check_metadata(file, "train_state", trainer.model().signature());
  if (auto it = file.metadata.find("trm.optimizer"); it == file.metadata.end() || it->second != Opt::name)
    throw io::FormatError(file.source_name() + ": expected optimiser state of " + Opt::name + ", found " +
                          (it == file.metadata.end() ? std::string("none") : it->second));
  M& model = trainer.model();

  // Stage everything: model state, EMA, optimiser moments, carry.
  std::map<std::string, DynTensor<S, 2>> model_stage, ema_stage, m_stage, v_stage;
  std::vector<io::ExpectedTensor> expected;
  auto expect = [&](std::map<std::string, DynTensor<S, 2>>& stage, const std::string& key, const std::string& name,
                    const std::vector<index_t>& shape, index_t rows, index_t cols) {
    auto& t = stage[key];
    t.resize(rows, cols);
    expected.push_back({name, io::DType::F32, std::vector<std::int64_t>(shape.begin(), shape.end()), std::as_writable_bytes(t.span())});
  };
  for_each_state_tensor(model, [&](const std::string& n, auto& p) {
    expect(model_stage, n, "model." + n, p.shape, p.value.extent(0), p.value.extent(1));
  });
  const bool has_ema = file.contains("ema." + std::string("lm_head.weight"));
  const bool has_optim = file.contains("optim.m.lm_head.weight");
  model.for_each_parameter([&](const std::string& n, auto& p) {
    const std::vector<index_t> mshape{p.value.extent(0), p.value.extent(1)};
    if (has_ema) expect(ema_stage, n, "ema." + n, mshape, p.value.extent(0), p.value.extent(1));
    if (has_optim) {
      expect(m_stage, n, "optim.m." + n, mshape, p.value.extent(0), p.value.extent(1));
      expect(v_stage, n, "optim.v." + n, mshape, p.value.extent(0), p.value.extent(1));
    }
  });
  std::int64_t step = 0;
  std::array<std::int64_t, 4> rng{};
  expected.push_back({"state.step", io::DType::I64, {1}, std::as_writable_bytes(std::span<std::int64_t>(&step, 1))});
  expected.push_back({"state.rng", io::DType::I64, {4}, std::as_writable_bytes(std::span<std::int64_t>(rng))});
  Carry<M> carry;
  // The carry's states are read into host tensors for a model of another space (copied at commit).
  DynTensor<S, 3> y_stage, z_stage;
  if (file.contains("carry.y")) {
    // The batch size of the carry comes from the file: carry.steps must be a rank-1 I32 tensor,
    // so its bytes (checked against the file's size by the reader) bound it before anything is
    // allocated; a shape [2^40, 0] holds no bytes and is refused here.
    const auto& rec = file.at("carry.steps");
    if (rec.shape.size() != 1 || rec.dtype != io::DType::I32 || rec.shape[0] < 1 || rec.shape[0] > (index_t(1) << 24))
      throw io::FormatError(path.string() + ": carry.steps: expected an I32 tensor of shape [B] with 1 <= B <= 2^24, found " +
                            std::string(io::dtype_name(rec.dtype)) + " " + io::format_shape(rec.shape));
    const index_t b = index_t(rec.shape[0]);
    // carry.y and carry.z are total_len * hidden floats per row: a few bytes of carry.steps would
    // ask for hundreds of thousands of times as many (a 4 MB file, 2^20 rows of a 30x30 model:
    // gigabytes). Their records must hold those bytes before anything is allocated, so what is
    // allocated is bounded by the size of the file.
    const index_t zb = b * index_t(M::num_latents);  // latent states stacked along the batch axis
    for (const auto& [name, rows] : {std::pair<const char*, index_t>{"carry.y", b}, {"carry.z", zb}}) {
      const std::vector<std::int64_t> want{rows, M::total_len, M::hidden};
      if (!file.contains(name) || file.at(name).dtype != io::DType::F32 || file.at(name).shape != want)
        throw io::FormatError(path.string() + ": " + name + ": expected an F32 tensor of shape " + io::format_shape(want) +
                              " (B = " + std::to_string(b) + " from carry.steps), found " +
                              (file.contains(name) ? std::string(io::dtype_name(file.at(name).dtype)) + " " +
                                                         io::format_shape(file.at(name).shape)
                                                   : std::string("none")));
    }
    carry.y.resize(b, M::total_len, M::hidden);
    carry.z.resize(zb, M::total_len, M::hidden);
    std::span<S> y_dst, z_dst;
    if constexpr (on_host) {
      y_dst = carry.y.span();
      z_dst = carry.z.span();
    } else {
      y_stage.resize(b, M::total_len, M::hidden);
      z_stage.resize(zb, M::total_len, M::hidden);
      y_dst = y_stage.span();
      z_dst = z_stage.span();
    }
    carry.steps.assign(b, 0);
    carry.halted.assign(b, 0);
    carry.data.inputs.resize(b, M::seq_len);
    carry.data.labels.resize(b, M::seq_len);
    carry.data.puzzle_identifiers.resize(b);
    const std::vector<std::int64_t> state{b, M::total_len, M::hidden}, grid{b, M::seq_len};
    expected.push_back({"carry.y", io::DType::F32, state, std::as_writable_bytes(y_dst)});
    expected.push_back({"carry.z", io::DType::F32, {zb, M::total_len, M::hidden}, std::as_writable_bytes(z_dst)});
    expected.push_back({"carry.steps", io::DType::I32, {b}, std::as_writable_bytes(std::span<std::int32_t>(carry.steps))});
    expected.push_back({"carry.halted", io::DType::U8, {b}, std::as_writable_bytes(std::span<std::uint8_t>(carry.halted))});
    expected.push_back({"carry.inputs", io::DType::I32, grid, std::as_writable_bytes(carry.data.inputs.span())});
    expected.push_back({"carry.labels", io::DType::I32, grid, std::as_writable_bytes(carry.data.labels.span())});
    expected.push_back({"carry.puzzle_identifiers", io::DType::I32, {b}, std::as_writable_bytes(carry.data.puzzle_identifiers.span())});
  }
  io::load_into(file, expected, {}, /*allow_extra=*/false);

  // Values are checked before anything is committed: a state a trainer could not have written is
  // refused, naming the field (the first training call would otherwise overflow, index out of
  // range or draw from a dead RNG).
  auto bad = [&](const std::string& what, const std::string& expected_text, long long found) {
    throw io::FormatError(path.string() + ": " + what + ": expected " + expected_text + ", found " + std::to_string(found));
  };
  if (step < 0 || step > (std::int64_t(1) << 53)) bad("state.step", "0..2^53", step);
  if (rng[0] == 0 && rng[1] == 0 && rng[2] == 0 && rng[3] == 0)
    throw io::FormatError(path.string() + ": state.rng: expected a live xoshiro256** state, found all zeros");
  if (!carry.empty()) {
    const int max_steps = trainer.halting().max_steps();
    for (std::size_t r = 0; r < carry.steps.size(); ++r) {
      if (carry.steps[r] < 0 || carry.steps[r] > max_steps)
        bad("carry.steps[" + std::to_string(r) + "]", "0.." + std::to_string(max_steps) + " (N_sup)", carry.steps[r]);
      if (carry.halted[r] > 1) bad("carry.halted[" + std::to_string(r) + "]", "0 or 1", carry.halted[r]);
      const auto id = carry.data.puzzle_identifiers(index_t(r));
      if (id < 0 || id >= model.num_puzzle_ids())
        bad("carry.puzzle_identifiers[" + std::to_string(r) + "]", "0.." + std::to_string(model.num_puzzle_ids() - 1), id);
    }
    const auto tokens = carry.data.inputs.span();
    for (std::size_t k = 0; k < tokens.size(); ++k)
      if (tokens[k] < 0 || tokens[k] >= M::vocab) bad("carry.inputs[" + std::to_string(k) + "]", "a token 0.." + std::to_string(M::vocab - 1), tokens[k]);
    const auto labels = carry.data.labels.span();
    for (std::size_t k = 0; k < labels.size(); ++k)
      if (labels[k] != ignore_label && (labels[k] < 0 || labels[k] >= M::vocab))
        bad("carry.labels[" + std::to_string(k) + "]", "a token 0.." + std::to_string(M::vocab - 1) + " or the ignore label", labels[k]);
  }

  // Commit: nothing below can fail on content. Host tensors are moved in; a device trainer's are
  // copied from the staged ones.
  auto to_space = [](DynTensor<S, 2>& staged) {
    if constexpr (on_host) {
      return std::move(staged);
    } else {
      DynTensor<S, 2, space> d;
      upload(staged, d);
      return d;
    }
  };
  for_each_state_tensor(model, [&](const std::string& n, auto& p) { p.value = to_space(model_stage.at(n)); });
  if (has_ema) {
    trainer.ema().shadow.clear();
    for (auto& [n, t] : ema_stage) trainer.ema().shadow.emplace(n, to_space(t));
  }
  trainer.optimizer_state().clear();
  if (has_optim)
    for (auto& [n, t] : m_stage) {
      auto& st = trainer.optimizer_state()[n];
      st.m = to_space(t);
      st.v = to_space(v_stage.at(n));
    }
  if constexpr (!on_host)
    if (!carry.empty()) {
      upload(y_stage, carry.y);
      upload(z_stage, carry.z);
    }
  trainer.set_step_count(long(step));
  std::array<std::uint64_t, 4> rs{};
  for (int i = 0; i < 4; ++i) rs[i] = std::bit_cast<std::uint64_t>(rng[i]);
  trainer.rng().set_state(rs);
  trainer.set_carry(std::move(carry));
  model.for_each_parameter([](const std::string&, auto& p) { p.zero_grad(); });
}

}  // namespace trm
