// libFuzzer harness: the maze readers, trm::data::maze::parse_csv (the Maze-Hard CSV: header,
// RFC 4180 quoting, question/answer fields checked against each other; 30x30 and 9x9, with the
// valid-shortest-path check) and parse_text (one row per line, blank-line separated mazes of any
// size), then the solver and the token encoding on every maze read.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include <trm/data/maze/csv.hpp>
#include <trm/data/maze/solver.hpp>

#include "fuzz_support.hpp"

namespace {

namespace mz = trm::data::maze;

// What a reader accepted encodes to tokens and decodes back to the same maze.
void round_trip(const mz::Maze& m) {
  const auto tokens = mz::encode(m);
  TRM_FUZZ_CHECK(tokens.size() == std::size_t(m.rows()) * std::size_t(m.cols()));
  TRM_FUZZ_CHECK(mz::decode(tokens, m.rows(), m.cols()) == m);
  TRM_FUZZ_CHECK(mz::Maze::from_field(m.to_field(), m.rows(), m.cols()) == m);
}

void read_csv_as(const std::string& text, int side, bool require_shortest) {
  trm_fuzz::expect_trm_errors([&] {
    std::istringstream in(text);
    const auto examples =
        mz::parse_csv(in, "fuzz.csv", mz::MazeCsvOptions{.rows = side, .cols = side, .require_shortest = require_shortest});
    for (const auto& ex : examples) {
      round_trip(ex.question);
      round_trip(ex.answer);
      const auto r = mz::solve(ex.question);
      if (require_shortest) TRM_FUZZ_CHECK(r.distance.has_value() && mz::valid_and_shortest(ex.question, ex.answer));
      if (r.answer) TRM_FUZZ_CHECK(mz::valid_and_shortest(ex.question, *r.answer));
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  read_csv_as(text, 30, false);
  read_csv_as(text, 9, true);
  trm_fuzz::expect_trm_errors([&] {
    std::istringstream in(text);
    for (const auto& m : mz::parse_text(in, "fuzz.txt")) {
      round_trip(m);
      trm_fuzz::expect_trm_errors([&] {  // a text maze need not have exactly one S and G: solve says so
        const mz::Maze question = m.without_path();  // a text maze may be an answer (with its 'o' path)
        const auto r = mz::solve(question);
        if (r.answer) TRM_FUZZ_CHECK(mz::valid_and_shortest(question, *r.answer));
      });
    }
  });
  return 0;
}
