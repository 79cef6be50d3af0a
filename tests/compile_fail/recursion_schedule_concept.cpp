// expect-error: satisfaction of .?.?.RecursionSchedule<
// A schedule that describes itself (RecursionScheduleValue) but cannot run a model (no Tape,
// forward or backward) is refused where it would be run: the Trainer requires
// trm::RecursionSchedule<schedule, Model>.
#include <trm/trm.hpp>

struct Describes {
  static constexpr std::size_t num_nets = 1, latent_states = 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  int net_calls_per_step() const { return 3; }
  std::string describe() const { return "Describes"; }
  bool operator==(const Describes&) const = default;
};
struct Puzzle {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 1;
  using mixer = trm::TokenMlpMixer;
  using schedule = Describes;
  using halting = trm::BceHalting<2>;
};

int main() {
  trm::Model<Puzzle> model;
  trm::Trainer trainer(model, trm::AdamAtan2{});
}
