#pragma once
// A model's identity as a string: every compile-time choice that changes the meaning of its
// weights. Saved in checkpoint metadata so that loading a checkpoint of another configuration is
// refused with both descriptions, not just a tensor-shape mismatch.
#include <string>
#include <typeinfo>

#include "config.hpp"

namespace trm {

template <class M>
std::string model_signature() {
  using tr = typename M::traits;
  using C = typename M::config;
  std::string s = "grid=" + std::to_string(tr::rows) + "x" + std::to_string(tr::cols) +
                  " vocab=" + std::to_string(tr::vocab) + " hidden=" + std::to_string(tr::hidden) +
                  " layers=" + std::to_string(tr::layers) + " expansion=" + std::to_string(tr::expansion) +
                  " prefix=" + std::to_string(tr::prefix_len) + " puzzle_ids=" + std::to_string(tr::num_puzzle_ids);
  if constexpr (is_attention_mixer_v<typename C::mixer>)
    s += " mixer=attention(" + std::to_string(C::mixer::heads) + ")";
  else
    s += " mixer=token_mlp";
  s += std::string(" positions=") +
       (tr::positions == PositionEncoding::rope ? "rope" : tr::positions == PositionEncoding::learned ? "learned" : "none");
  if constexpr (requires { M::schedule::describe(); }) s += " schedule=" + std::string(M::schedule::describe());
  s += " nets=" + std::to_string(M::num_nets);
  return s;
}

}  // namespace trm
