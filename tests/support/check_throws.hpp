#pragma once
// CHECK_THROWS_CONTAINING(expr, Exception, "a", "b", ...): expr throws Exception (or a subclass)
// and its what() contains every one of the strings. doctest::Contains matches one substring, so
// this runs one CHECK_THROWS_WITH_AS per string (expr is evaluated once per string: use it only on
// expressions that throw before they change anything).
//
// trm::test::error_of<E>(f): runs f, which must throw E (or a subclass); returns its what(), or a
// marker ("<no exception>", "<wrong exception type: ...>") that no expected message contains.
#include <doctest/doctest.h>

#include <exception>
#include <initializer_list>
#include <string>

#define CHECK_THROWS_CONTAINING(expr, exc, ...)                          \
  do {                                                                   \
    for (const char* trm_needle_ : std::initializer_list<const char*>{__VA_ARGS__}) \
      CHECK_THROWS_WITH_AS(expr, doctest::Contains(trm_needle_), exc);   \
  } while (false)

namespace trm::test {

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception type: ") + e.what() + ">";
  }
  return "<no exception>";
}

}  // namespace trm::test
