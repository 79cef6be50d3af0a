#pragma once
// What bench_trm (CPU) and bench_cuda (GPU) share: the benchmarked configurations (the reference's
// Sudoku TRM-MLP and Maze/ARC TRM-Att at 916 positions) and their exact GEMM flop counts.
#include <trm/trm.hpp>

namespace trm_bench {
using namespace trm;

// ------------------------------------------------------------------------------------------------
// Configurations
// ------------------------------------------------------------------------------------------------
struct SudokuMlp {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 512, layers = 2;
  using mixer = TokenMlpMixer;
  using schedule = TrmRecursion<6, 3>;
  using halting = BceHalting<16>;
};
struct ArcAtt {
  static constexpr int rows = 30, cols = 30, vocab = 12, hidden = 512, layers = 2;
  using mixer = AttentionMixer<8>;
  using schedule = TrmRecursion<4, 3>;
  using halting = BceHalting<16>;
};

// ------------------------------------------------------------------------------------------------
// Exact model GEMM flops (per sequence)
// ------------------------------------------------------------------------------------------------
template <class Cfg>
struct Flops {
  using traits = config_traits<Cfg>;
  static constexpr double S = double(traits::total_len), D = double(traits::hidden), L = double(traits::seq_len),
                          V = double(traits::vocab);
  static double swiglu(double rows, double width) {
    const double inter = double(swiglu_intermediate(index_t(width), traits::expansion));
    return 2.0 * rows * width * 2.0 * inter + 2.0 * rows * inter * width;
  }
  // One forward net call (all layers) on one sequence.
  static double net_call() {
    double mixer;
    if constexpr (is_attention_mixer_v<typename Cfg::mixer>) {
      const double hd = D / Cfg::mixer::heads;
      mixer = 2.0 * S * D * 3.0 * D                       // qkv projection
              + 2.0 * 2.0 * Cfg::mixer::heads * S * S * hd  // q k^T and P v, all heads
              + 2.0 * S * D * D;                          // output projection
    } else {
      mixer = swiglu(D, S);  // SwiGLU over the S positions of each of the D channels
    }
    return double(traits::layers) * (mixer + swiglu(S, D));
  }
  static double heads() { return 2.0 * L * D * V + 2.0 * D * 2.0; }
  // The schedule's counts come from the model's schedule value (model.recursion()).
  using schedule = typename Cfg::schedule;
  static double train_call(const schedule& s) {
    return s.net_calls_per_step() * net_call() + 2.0 * s.recorded_calls() * net_call() + 3.0 * heads();
  }
  static double inference(const schedule& s, int steps) { return steps * (s.net_calls_per_step() * net_call() + heads()); }
};

}  // namespace trm_bench
