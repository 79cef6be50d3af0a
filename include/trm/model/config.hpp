#pragma once
// Compile-time model configuration. A user names the grid, vocabulary, sizes, mixer, recursion
// schedule and halting policy as a struct of constants and types:
//
//   struct Sudoku6 {
//     static constexpr int rows = 6, cols = 6, vocab = 8, hidden = 128, layers = 2;
//     using mixer    = trm::TokenMlpMixer;          // or trm::AttentionMixer<4>
//     using schedule = trm::TrmRecursion<3, 2>;     // n, T
//     using halting  = trm::BceHalting<8>;          // N_sup
//   };
//   static_assert(trm::ModelConfig<Sudoku6>);
//
// Optional members (defaults in brackets): expansion [4], puzzle_emb_len [16], num_puzzle_ids [1],
// positions [mixer default: none for the token MLP, rope for attention], rope_theta [10000],
// rms_norm_eps [1e-5].
#include <concepts>

#include "../core/config.hpp"

namespace trm {

enum class PositionEncoding { none, rope, learned };

// Mixer tags: which sequence mixer each block uses.
struct TokenMlpMixer {
  static constexpr PositionEncoding default_positions = PositionEncoding::none;
};
template <int Heads>
struct AttentionMixer {
  static_assert(Heads >= 1, "AttentionMixer: at least one head");
  static constexpr int heads = Heads;
  static constexpr PositionEncoding default_positions = PositionEncoding::rope;
};

template <class M>
inline constexpr bool is_attention_mixer_v = false;
template <int H>
inline constexpr bool is_attention_mixer_v<AttentionMixer<H>> = true;

template <class M>
concept MixerTag = std::same_as<M, TokenMlpMixer> || is_attention_mixer_v<M>;

template <class C>
concept ModelConfig = requires {
  { C::rows } -> std::convertible_to<int>;
  { C::cols } -> std::convertible_to<int>;
  { C::vocab } -> std::convertible_to<int>;
  { C::hidden } -> std::convertible_to<int>;
  { C::layers } -> std::convertible_to<int>;
  typename C::mixer;
  typename C::schedule;
  typename C::halting;
} && MixerTag<typename C::mixer> && (C::rows >= 1 && C::cols >= 1 && C::rows <= 30 && C::cols <= 30) &&
                      (C::vocab >= 2) && (C::hidden >= 2 && C::hidden % 2 == 0) && (C::layers >= 1);

namespace detail {
template <class C>
constexpr int expansion() {
  if constexpr (requires { C::expansion; }) return C::expansion; else return 4;
}
template <class C>
constexpr int puzzle_emb_len() {
  if constexpr (requires { C::puzzle_emb_len; }) return C::puzzle_emb_len; else return 16;
}
template <class C>
constexpr int num_puzzle_ids() {
  if constexpr (requires { C::num_puzzle_ids; }) return C::num_puzzle_ids; else return 1;
}
template <class C>
constexpr PositionEncoding positions() {
  if constexpr (requires { C::positions; }) return C::positions; else return C::mixer::default_positions;
}
template <class C>
constexpr double rope_theta() {
  if constexpr (requires { C::rope_theta; }) return C::rope_theta; else return 10000.0;
}
template <class C>
constexpr double rms_norm_eps() {
  if constexpr (requires { C::rms_norm_eps; }) return C::rms_norm_eps; else return 1e-5;
}
}  // namespace detail

// Every size of a configuration, resolved (defaults filled in).
template <ModelConfig C>
struct config_traits {
  static constexpr index_t rows = C::rows, cols = C::cols;
  static constexpr index_t seq_len = rows * cols;
  static constexpr index_t vocab = C::vocab;
  static constexpr index_t hidden = C::hidden;
  static constexpr std::size_t layers = C::layers;
  static constexpr index_t expansion = detail::expansion<C>();
  static constexpr index_t prefix_len = detail::puzzle_emb_len<C>();
  static constexpr index_t total_len = seq_len + prefix_len;
  static constexpr index_t num_puzzle_ids = detail::num_puzzle_ids<C>();
  static constexpr PositionEncoding positions = detail::positions<C>();
  static constexpr double rope_theta = detail::rope_theta<C>();
  static constexpr double rms_norm_eps = detail::rms_norm_eps<C>();
  static_assert(prefix_len >= 1, "the q head reads prefix position 0: puzzle_emb_len must be >= 1");
  static_assert(num_puzzle_ids >= 1, "num_puzzle_ids must be >= 1");
};

}  // namespace trm
