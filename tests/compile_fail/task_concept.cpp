// expect-error: satisfaction of .?.?.Task<
// A puzzle family used with the generic helpers must satisfy trm::data::Task (data/task.hpp):
// this one has sizes and an encoder but no decode() or is_valid_answer(), so
// the generic make_batch refuses it and the message names Task.
#include <trm/trm.hpp>

struct Reversal {
  static constexpr int rows = 1, cols = 8, vocab_size = 4;
  static constexpr std::uint8_t pad_token = 0;
  using puzzle_type = std::array<std::uint8_t, 8>;
  const char* name() const { return "reversal"; }
  std::array<std::uint8_t, 8> encode(const puzzle_type& p) const { return p; }
};

int main() {
  std::vector<trm::data::TaskExample<Reversal>> examples(2);
  trm::Batch batch = trm::data::make_batch(Reversal{}, examples);
}
