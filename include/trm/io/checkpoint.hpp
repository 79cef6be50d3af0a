#pragma once
// Model weights as safetensors under the reference's state-dict names (SPEC §1.12).
// Loading is strict and all-or-nothing: every expected tensor must be present with its shape and
// dtype, nothing unexpected may be there (unless allowed), and the whole file is checked before a
// single value is copied. Names may carry the prefixes torch.compile and the loss head add.
#include <filesystem>
#include <string>
#include <vector>

#include "safetensors.hpp"

namespace trm {

// Prefixes of the reference checkpoints: compiled model wrapped by the loss head.
inline const std::vector<std::string> reference_prefixes = {"_orig_mod.model.inner.", "model.inner.", "_orig_mod.", ""};

template <class M, class F>
void for_each_state_tensor(M& model, F&& f) {
  model.for_each_parameter(f);
  model.for_each_buffer(f);
}

// The model's state (parameters and persistent buffers) as safetensors records (F32).
template <class M>
void add_state(io::SafetensorsFile& file, M& model, const std::string& prefix = "") {
  for_each_state_tensor(model, [&](const std::string& name, auto& p) {
    using S = typename std::remove_reference_t<decltype(p.value)>::value_type;
    std::vector<std::int64_t> shape(p.shape.begin(), p.shape.end());
    std::vector<float> values(p.value.span().begin(), p.value.span().end());
    (void)sizeof(S);
    file.add<float>(prefix + name, shape, std::span<const float>(values));
  });
}

template <class M>
void save_weights(M& model, const std::filesystem::path& path) {
  io::SafetensorsFile file;
  file.metadata["format"] = "pt";
  file.metadata["producer"] = "trm";
  add_state(file, model);
  file.save(path);
}

// Loads every parameter and buffer of `model` from `file` (float32 tensors). Extra tensors in the
// file are an error unless allow_extra. On any error nothing in the model has changed.
template <class M>
void load_weights(M& model, const io::SafetensorsFile& file, std::vector<std::string> accepted_prefixes = reference_prefixes,
                  bool allow_extra = false) {
  using S = typename M::scalar_type;
  static_assert(std::is_same_v<S, float>, "load_weights reads float32 into a float model");
  std::vector<io::ExpectedTensor> expected;
  for_each_state_tensor(model, [&](const std::string& name, auto& p) {
    expected.push_back(io::ExpectedTensor{name, io::DType::F32, std::vector<std::int64_t>(p.shape.begin(), p.shape.end()),
                                          std::as_writable_bytes(p.value.span())});
  });
  io::load_into(file, expected, accepted_prefixes, allow_extra);
}

template <class M>
void load_weights(M& model, const std::filesystem::path& path, std::vector<std::string> accepted_prefixes = reference_prefixes,
                  bool allow_extra = false) {
  load_weights(model, io::SafetensorsFile::load(path), std::move(accepted_prefixes), allow_extra);
}

}  // namespace trm
