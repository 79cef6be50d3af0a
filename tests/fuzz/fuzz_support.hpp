#pragma once
// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp, see tests/fuzz/README.md).
//
// The contract a harness checks: for any input, a reader either returns a value that holds up
// (the harness then uses it: round trips, a training step, an inference) or throws one of the
// library's documented error types for bad content. Everything else is a finding and must stop
// the fuzzer: another exception type (a raw nlohmann or std::out_of_range error, std::bad_alloc,
// a std::invalid_argument that is not a trm error), a crash, a sanitizer report, a leak, a hang.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <typeinfo>

#include <trm/core/error.hpp>
#include <trm/io/atomic_file.hpp>
#include <trm/io/safetensors.hpp>

#include "../support/temp_dir.hpp"

namespace trm_fuzz {

// One scratch directory per fuzzing process (libFuzzer's -jobs/-fork run separate processes, each
// with its own pid in the name), removed at exit. Readers that take a path read files written here.
inline const std::filesystem::path& scratch() {
  static const trm::test::TempDir dir("trm_fuzz");
  return dir.path();
}

inline void write_file(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "trm_fuzz: cannot write %s (the harness's own scratch file)\n", path.c_str());
    std::abort();
  }
}
inline void write_file(const std::filesystem::path& path, std::string_view text) {
  write_file(path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// A broken invariant of a value a reader accepted (e.g. a round trip that changes it): abort, so
// libFuzzer saves the input as a crash.
[[noreturn]] inline void invariant_failed(const char* what) {
  std::fprintf(stderr, "trm_fuzz: invariant broken: %s\n", what);
  std::abort();
}
#define TRM_FUZZ_CHECK(cond) \
  do {                       \
    if (!(cond)) ::trm_fuzz::invariant_failed(#cond); \
  } while (0)

// Runs f; the library's documented errors for bad content are the normal outcome of a bad input.
// Extra: more accepted error types (e.g. the command line's CliError). Any other exception is
// reported with its type and message, then abort() makes libFuzzer keep the input.
template <class... Extra, class F>
void expect_trm_errors(F&& f) {
  try {
    try {
      f();
    } catch (const trm::io::FormatError&) {      // malformed file content (safetensors, npy, datasets)
    } catch (const trm::ValueError&) {           // invalid values (CSV, mazes, saved positions, ...)
    } catch (const trm::ShapeError&) {           // a shape that does not fit
    } catch (const trm::io::NotAFileError&) {    // a path that is not a regular file
    }
  } catch (const std::exception& e) {
    if constexpr (sizeof...(Extra) > 0) {
      if ((... || (dynamic_cast<const Extra*>(&e) != nullptr))) return;
    }
    std::fprintf(stderr, "trm_fuzz: finding: an exception that is not a trm error escaped: %s: %s\n", typeid(e).name(),
                 e.what());
    std::abort();
  }
}

}  // namespace trm_fuzz
