// expect-error: satisfaction of .?.?.ConfigOptionsValid<
// An optional setting spelled as a top-level member (the style before trm::ConfigOptions) would
// be ignored; ModelConfig refuses it through ConfigOptionsValid.
#include <trm/trm.hpp>

struct Puzzle {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 1;
  static constexpr int expansion = 2;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;
  using halting = trm::BceHalting<2>;
};

trm::Model<Puzzle> model;

int main() {}
