#pragma once
// Saving and loading a model: one pair, save_model / load_model.
//
// save_model writes the parameters and persistent buffers as safetensors (F32) under the
// reference's state-dict names, with the model's complete signature (Model::signature(): sizes,
// mixer, positions, the schedule's counts, N_sup, the puzzle-table size) in the metadata.
// load_model refuses a file whose signature differs from the model's, naming both; a file without
// one (a reference state dict converted by tools/convert_checkpoint.py) is checked by names,
// shapes and dtypes only. Loading is strict and all-or-nothing: every expected tensor must be
// present with its shape and dtype, nothing unexpected may be there (unless allowed), and the
// whole file is checked before a single value is copied. Names may carry the prefixes
// torch.compile and the loss head add.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../core/config.hpp"
#include "../core/tensor.hpp"
#include "safetensors.hpp"

namespace trm {

// Prefixes of the reference checkpoints: compiled model wrapped by the loss head.
inline const std::vector<std::string> reference_prefixes = {"_orig_mod.model.inner.", "model.inner.", "_orig_mod.", ""};

// Every tensor of a model's state: its parameters, then its persistent buffers.
template <class M, class F>
void for_each_state_tensor(M& model, F&& f) {
  model.for_each_parameter(f);
  model.for_each_buffer(f);
}

namespace detail {
// f(span of t's values on the host): the tensor's own memory on the host, a downloaded copy for a
// tensor of another space (a device model saves what it holds, with no host twin kept).
template <class T, class Ext, MemorySpace S, class F>
void with_host_values(const Tensor<T, Ext, S>& t, F&& f) {
  if constexpr (std::is_same_v<S, host_space>) {
    f(t.span());
  } else {
    const auto h = download(t);
    f(h.span());
  }
}
}  // namespace detail

// The model's state (parameters and persistent buffers) as safetensors records (F32).
template <class M>
void add_state(io::SafetensorsFile& file, const M& model, const std::string& prefix = "") {
  static_assert(std::is_same_v<typename M::scalar_type, float>, "checkpoints store float32 models");
  for_each_state_tensor(model, [&](const std::string& name, const auto& p) {
    std::vector<std::int64_t> shape(p.shape.begin(), p.shape.end());
    detail::with_host_values(p.value, [&](std::span<const float> v) { file.add<float>(prefix + name, shape, v); });
  });
}

namespace detail {
inline std::string metadata_or_none(const io::SafetensorsFile& file, const char* key) {
  auto it = file.metadata.find(key);
  return it == file.metadata.end() ? std::string("(none)") : it->second;
}
// A trm file of `kind` whose signature equals `signature`, or an io::FormatError naming both.
inline void check_metadata(const io::SafetensorsFile& file, const std::string& kind, const std::string& signature) {
  if (metadata_or_none(file, "trm.kind") != kind)
    throw io::FormatError(file.source_name() + ": expected a trm " + kind + " file, found kind '" +
                          metadata_or_none(file, "trm.kind") + "'");
  if (metadata_or_none(file, "trm.signature") != signature)
    throw io::FormatError(file.source_name() + ": checkpoint of another model configuration:\n  expected: " + signature +
                          "\n  found:    " + metadata_or_none(file, "trm.signature"));
}
}  // namespace detail

// `extra_metadata`: more string entries for the file's metadata (e.g. a program's run
// configuration); the format and trm.* entries set here win over extra ones. Atomic: the file is
// complete or untouched.
template <class M>
void save_model(const M& model, const std::filesystem::path& path, const std::map<std::string, std::string>& extra_metadata = {}) {
  io::SafetensorsFile file;
  file.metadata = extra_metadata;
  file.metadata["format"] = "pt";
  file.metadata["producer"] = "trm";
  file.metadata["trm.kind"] = "model";
  file.metadata["trm.signature"] = model.signature();
  add_state(file, model);
  file.save(path);
}

// Loads every parameter and buffer of `model` from `file` (float32 tensors). A file written by
// save_model must carry the model's signature; a reference state dict (no trm metadata) is bound
// by name after stripping one of `accepted_prefixes`. Extra tensors in the file are an error
// unless allow_extra (fixtures keep more than the weights). On any error nothing in the model has
// changed.
template <class M>
void load_model(M& model, const io::SafetensorsFile& file, std::vector<std::string> accepted_prefixes = reference_prefixes,
                bool allow_extra = false) {
  static_assert(std::is_same_v<typename M::scalar_type, float>, "load_model reads float32 into a float model");
  if (file.metadata.count("trm.kind")) detail::check_metadata(file, "model", model.signature());
  using space = typename M::space;
  constexpr bool on_host = std::is_same_v<space, host_space>;
  // A model of another space is loaded into host tensors first, then copied (all or nothing).
  std::map<std::string, DynTensor<float, 2>> stage;
  std::vector<io::ExpectedTensor> expected;
  for_each_state_tensor(model, [&](const std::string& name, auto& p) {
    std::span<float> dst;
    if constexpr (on_host) {
      dst = p.value.span();
    } else {
      auto& h = stage[name];
      h.resize(p.value.extents());
      dst = h.span();
    }
    expected.push_back(io::ExpectedTensor{name, io::DType::F32, std::vector<std::int64_t>(p.shape.begin(), p.shape.end()),
                                          std::as_writable_bytes(dst)});
  });
  io::load_into(file, expected, accepted_prefixes, allow_extra);
  if constexpr (!on_host) for_each_state_tensor(model, [&](const std::string& name, auto& p) { upload(stage.at(name), p.value); });
}

template <class M>
void load_model(M& model, const std::filesystem::path& path, std::vector<std::string> accepted_prefixes = reference_prefixes,
                bool allow_extra = false) {
  load_model(model, io::SafetensorsFile::load(path), std::move(accepted_prefixes), allow_extra);
}

// The number of puzzle identifiers of a saved model (rows of its puzzle table), to build a model
// of the right size before load_model: Model<C> m({.puzzle_ids = checkpoint_puzzle_ids(path)}).
// 1 when the file has no puzzle table (puzzle_emb_ndim = 0).
namespace detail {
// The name of the file's puzzle table under the first accepted prefix that has one ("" if none).
inline std::string puzzle_table_name(const io::SafetensorsFile& file, const std::vector<std::string>& accepted_prefixes) {
  for (const auto& prefix : accepted_prefixes)
    if (file.contains(prefix + "puzzle_emb.weights")) return prefix + "puzzle_emb.weights";
  return {};
}
}  // namespace detail

inline index_t checkpoint_puzzle_ids(const io::SafetensorsFile& file, const std::vector<std::string>& accepted_prefixes = reference_prefixes) {
  const std::string name = detail::puzzle_table_name(file, accepted_prefixes);
  if (name.empty()) return 1;
  const auto& shape = file.at(name).shape;
  if (shape.size() != 2 || shape[0] < 1)
    throw io::FormatError(file.source_name() + ": puzzle_emb.weights: expected a [puzzle_ids >= 1, width] table");
  return index_t(shape[0]);
}
inline index_t checkpoint_puzzle_ids(const std::filesystem::path& path) {
  return checkpoint_puzzle_ids(io::SafetensorsFile::load(path));
}

// A copy of a saved model whose puzzle table has `rows` rows: the old rows kept, every new row the
// mean of the old ones (what the reference's load_checkpoint puts in every row when the table's
// size differs; keeping the old rows lets a checkpoint take on new tasks, ARC's test-time
// workflow, without forgetting its own). The signature's puzzle_ids is updated to match. A file
// without a puzzle table, or with more rows than `rows`, is an io::FormatError.
inline io::SafetensorsFile extend_puzzle_table(const io::SafetensorsFile& file, index_t rows,
                                               const std::vector<std::string>& accepted_prefixes = reference_prefixes) {
  const std::string name = detail::puzzle_table_name(file, accepted_prefixes);
  if (name.empty()) throw io::FormatError(file.source_name() + ": no puzzle_emb.weights table to extend");
  const index_t old_rows = checkpoint_puzzle_ids(file, accepted_prefixes);
  if (rows < old_rows)
    throw io::FormatError(file.source_name() + ": puzzle table of " + std::to_string(old_rows) + " rows, cannot shrink it to " +
                          std::to_string(rows));
  const std::int64_t width = file.at(name).shape[1];
  const std::vector<float> old = file.values<float>(name);
  std::vector<double> mean(std::size_t(width), 0.0);
  for (index_t r = 0; r < old_rows; ++r)
    for (std::int64_t k = 0; k < width; ++k) mean[std::size_t(k)] += old[std::size_t(r * width + k)];
  std::vector<float> table(std::size_t(rows * width));
  std::copy(old.begin(), old.end(), table.begin());
  for (index_t r = old_rows; r < rows; ++r)
    for (std::int64_t k = 0; k < width; ++k) table[std::size_t(r * width + k)] = float(mean[std::size_t(k)] / double(old_rows));
  io::SafetensorsFile out;
  out.metadata = file.metadata;
  out.metadata.erase(std::string(io::kChecksumKey));  // the file's sums were verified when it was read; save() writes new ones
  for (const auto& [n, t] : file.tensors())
    if (n != name) out.add(t);
  out.add<float>(name, {std::int64_t(rows), width}, std::span<const float>(table));
  if (auto it = out.metadata.find("trm.signature"); it != out.metadata.end()) {
    const std::string key = " puzzle_ids=" + std::to_string(old_rows) + " ";
    if (const auto at = it->second.find(key); at != std::string::npos)
      it->second.replace(at, key.size(), " puzzle_ids=" + std::to_string(rows) + " ");
  }
  return out;
}

}  // namespace trm
