// expect-error: satisfaction of .?.?.ConfigSizes<
// The sizes of a configuration obey the spec's rules (trm::ConfigSizes): an odd hidden size cannot
// be split into rotary pairs and is refused.
#include <trm/trm.hpp>

struct Puzzle {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 15, layers = 1;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;
  using halting = trm::BceHalting<2>;
};

trm::Model<Puzzle> model;

int main() {}
