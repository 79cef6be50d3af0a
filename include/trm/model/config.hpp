#pragma once
// Compile-time model configuration. A user names the grid, vocabulary, sizes, mixer, recursion
// schedule and halting policy as a struct of constants and types:
//
//   struct Sudoku6 {
//     static constexpr int rows = 6, cols = 6, vocab = 8, hidden = 128, layers = 2;
//     using mixer    = trm::TokenMlpMixer;          // or trm::AttentionMixer<4>
//     using schedule = trm::TrmRecursion<3, 2>;     // n, T; or trm::TrmRecursion<> (given at run time)
//     using halting  = trm::BceHalting<8>;          // N_sup; or trm::BceHalting<>
//     static constexpr trm::ConfigOptions options{.puzzle_emb_len = 4};   // optional
//   };
//   static_assert(trm::ModelConfig<Sudoku6>);
//
// Optional settings live in one designated-initializer aggregate, `options`, so that a misspelled
// one (`.expnasion = 2`) is a compile error instead of a silent default. What a configuration
// does NOT fix at compile time: the counts of a dynamic schedule or policy, and the number of
// puzzle identifiers (a fact of the dataset), both given to the Model's constructor (ModelArgs).
#include <concepts>
#include <string>

#include "../core/config.hpp"
#include "../halting/halting.hpp"

namespace trm {

// `mixer_default`: none for the token MLP (it has no positions to encode), rope for attention.
enum class PositionEncoding { mixer_default, none, rope, learned };

// The optional settings of a configuration (reference names; SPEC §1.1).
struct ConfigOptions {
  int expansion = 4;         // SwiGLU expansion
  int puzzle_emb_len = 16;   // prefix positions; 0: ceil(puzzle_emb_ndim / hidden), the reference's rule
  int puzzle_emb_ndim = -1;  // width of a puzzle-table row; -1: = hidden; 0: no puzzle embedding
  PositionEncoding positions = PositionEncoding::mixer_default;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
};

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

// The part of a recursion schedule's contract that does not depend on the model (the rest,
// forward/backward over a model and its tape, is RecursionSchedule<S, Model> in
// recursion/trm_recursion.hpp, checked where a Trainer or Solver is made).
template <class S>
concept RecursionScheduleValue = std::copyable<S> && std::equality_comparable<S> && requires(const S& s) {
  { S::num_nets } -> std::convertible_to<std::size_t>;
  { S::latent_states } -> std::convertible_to<std::size_t>;
  { S::net_name(std::size_t{}) } -> std::convertible_to<const char*>;
  { s.net_calls_per_step() } -> std::convertible_to<int>;
  { s.describe() } -> std::convertible_to<std::string>;
};

namespace detail {
template <class C>
constexpr ConfigOptions options() {
  if constexpr (requires { C::options; }) return C::options; else return ConfigOptions{};
}
// Optional settings spelled as top-level members (the pre-`options` style) would be ignored.
template <class C>
constexpr bool has_stray_option_member() {
  return requires { C::expansion; } || requires { C::puzzle_emb_len; } || requires { C::puzzle_emb_ndim; } ||
         requires { C::positions; } || requires { C::rope_theta; } || requires { C::rms_norm_eps; } ||
         requires { C::num_puzzle_ids; };
}
}  // namespace detail

// What a configuration must provide, and the rules its values obey. Each part is a named concept
// so that a compiler's message says which one a type fails.
template <class C>
concept ConfigSizes = requires {
  { C::rows } -> std::convertible_to<int>;
  { C::cols } -> std::convertible_to<int>;
  { C::vocab } -> std::convertible_to<int>;
  { C::hidden } -> std::convertible_to<int>;
  { C::layers } -> std::convertible_to<int>;
} && (C::rows >= 1 && C::cols >= 1 && C::rows <= 30 && C::cols <= 30) && (C::vocab >= 2) &&
                      (C::hidden >= 2 && C::hidden % 2 == 0) && (C::layers >= 1);

template <class C>
concept ConfigOptionsValid =
    (!requires { C::options; } || std::same_as<std::remove_cvref_t<decltype(C::options)>, ConfigOptions>) &&
    !detail::has_stray_option_member<C>() && detail::options<C>().expansion >= 1 &&
    detail::options<C>().puzzle_emb_len >= 0 && detail::options<C>().puzzle_emb_ndim >= -1 &&
    detail::options<C>().rope_theta > 0 && detail::options<C>().rms_norm_eps > 0;

template <class C>
concept ModelConfig = ConfigSizes<C> && requires {
  typename C::mixer;
  typename C::schedule;
  typename C::halting;
} && MixerTag<typename C::mixer> && RecursionScheduleValue<typename C::schedule> && HaltingPolicy<typename C::halting> &&
                      ConfigOptionsValid<C>;

// Every size of a configuration, resolved (defaults filled in).
template <ModelConfig C>
struct config_traits {
  static constexpr ConfigOptions options = detail::options<C>();
  static constexpr index_t rows = C::rows, cols = C::cols;
  static constexpr index_t seq_len = rows * cols;
  static constexpr index_t vocab = C::vocab;
  static constexpr index_t hidden = C::hidden;
  static constexpr std::size_t layers = C::layers;
  static constexpr index_t expansion = options.expansion;
  // The reference: a puzzle row of puzzle_emb_ndim values, zero-padded to prefix_len * hidden and
  // viewed as prefix_len rows; puzzle_emb_len = 0 means just enough rows for the vector.
  static constexpr index_t puzzle_emb_ndim = options.puzzle_emb_ndim < 0 ? hidden : options.puzzle_emb_ndim;
  static constexpr index_t prefix_len =
      options.puzzle_emb_len == 0 ? (puzzle_emb_ndim + hidden - 1) / hidden : options.puzzle_emb_len;
  static constexpr index_t total_len = seq_len + prefix_len;
  static constexpr PositionEncoding positions =
      options.positions == PositionEncoding::mixer_default ? C::mixer::default_positions : options.positions;
  static constexpr double rope_theta = options.rope_theta;
  static constexpr double rms_norm_eps = options.rms_norm_eps;
  static_assert(puzzle_emb_ndim <= prefix_len * hidden,
                "puzzle_emb_ndim must fit the prefix: puzzle_emb_ndim <= puzzle_emb_len * hidden");
  static_assert(total_len >= 1);
};

}  // namespace trm
