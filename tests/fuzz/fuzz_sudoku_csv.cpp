// libFuzzer harness: trm::data::sudoku::parse_csv (PUZZLE[,SOLUTION] lines, an optional header
// naming the columns, comments) for the three compiled box shapes (4x4, 6x6, 9x9), with and
// without the uniqueness check (which runs the solver on every puzzle). An accepted example must
// be a valid, complete solution that keeps the puzzle's givens.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include <trm/data/sudoku/csv.hpp>

#include "fuzz_support.hpp"

namespace {

namespace sd = trm::data::sudoku;

template <class S>
void read_as(const std::string& text, bool require_unique) {
  trm_fuzz::expect_trm_errors([&] {
    std::istringstream in(text);
    const auto examples = sd::parse_csv<S>(in, "fuzz.csv", sd::CsvOptions{.require_unique = require_unique});
    for (const auto& ex : examples) {
      TRM_FUZZ_CHECK(!sd::find_conflict(ex.solution).has_value());
      for (int i = 0; i < S::cells; ++i) {
        const auto c = static_cast<std::size_t>(i);
        TRM_FUZZ_CHECK(ex.solution[c] >= 1 && ex.solution[c] <= S::n);
        TRM_FUZZ_CHECK(ex.puzzle[c] == 0 || ex.puzzle[c] == ex.solution[c]);
      }
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  read_as<sd::Sudoku4>(text, true);
  read_as<sd::Sudoku6>(text, true);
  read_as<sd::Sudoku9>(text, true);
  read_as<sd::Sudoku9>(text, false);
  return 0;
}
