// expect-error: satisfaction of .?.?.RecursionScheduleValue<
// A configuration's schedule must be a value type with the members of
// trm::RecursionScheduleValue (model/config.hpp): here net_calls_per_step is a static constant,
// not a member function, and describe() is missing.
#include <trm/trm.hpp>

struct Loop {
  static constexpr std::size_t num_nets = 1, latent_states = 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  static constexpr int net_calls_per_step = 3;
  bool operator==(const Loop&) const = default;
};
struct Puzzle {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 1;
  using mixer = trm::TokenMlpMixer;
  using schedule = Loop;
  using halting = trm::BceHalting<2>;
};

trm::Model<Puzzle> model;

int main() {}
