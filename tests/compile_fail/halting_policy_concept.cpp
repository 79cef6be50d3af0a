// expect-error: satisfaction of .?.?.HaltingPolicy<
// A configuration's halting policy must satisfy trm::HaltingPolicy (halting/halting.hpp). This one
// is written in the old style (N_sup as a static member, no describe()): ModelConfig rejects it and
// the message names HaltingPolicy.
#include <trm/trm.hpp>

struct StopAfterFour {
  static constexpr int max_steps = 4;
  static constexpr bool needs_q_continue_target = false;
};
struct Puzzle {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 1;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;
  using halting = StopAfterFour;
};

trm::Model<Puzzle> model;

int main() {}
