// expect-error: has no non-static data member named .?.?.expnasion
// Optional settings are named in one designated-initializer aggregate, trm::ConfigOptions, so a
// misspelled one is a compile error instead of a silent default.
#include <trm/trm.hpp>

struct Puzzle {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 1;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;
  using halting = trm::BceHalting<2>;
  static constexpr trm::ConfigOptions options{.expnasion = 2};
};

trm::Model<Puzzle> model;

int main() {}
