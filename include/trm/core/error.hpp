#pragma once
// Errors that say what was expected and what was found.
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"

namespace trm {

// Thrown when a tensor's shape does not match what an operation needs.
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Thrown for invalid values (out-of-range tokens, bad hyper-parameters, ...).
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

template <class Range>
std::string format_shape(const Range& dims) {
  std::ostringstream os;
  os << '[';
  bool first = true;
  for (auto d : dims) {
    if (!first) os << ", ";
    first = false;
    if (d < 0)
      os << '?';
    else
      os << d;
  }
  os << ']';
  return os.str();
}

inline std::string format_shape(std::initializer_list<index_t> dims) {
  return format_shape(std::vector<index_t>(dims));
}

// `what` names the tensor or argument; expected dims < 0 mean "any".
template <class A, class B>
[[noreturn]] void throw_shape_mismatch(const std::string& what, const A& expected, const B& found) {
  throw ShapeError(what + ": expected shape " + format_shape(expected) + ", found " + format_shape(found));
}

template <class A, class B>
void check_shape(const std::string& what, const A& expected, const B& found) {
  bool ok = std::size(expected) == std::size(found);
  if (ok) {
    auto e = std::begin(expected);
    for (auto f = std::begin(found); f != std::end(found); ++f, ++e)
      if (*e >= 0 && *e != *f) ok = false;
  }
  if (!ok) throw_shape_mismatch(what, expected, found);
}

}  // namespace trm
