#pragma once
// CHECK_THROWS_CONTAINING(expr, Exception, "a", "b", ...): expr throws Exception (or a subclass)
// and its what() contains every one of the strings. doctest::Contains matches one substring, so
// this runs one CHECK_THROWS_WITH_AS per string (expr is evaluated once per string: use it only on
// expressions that throw before they change anything).
#include <doctest/doctest.h>

#include <initializer_list>

#define CHECK_THROWS_CONTAINING(expr, exc, ...)                          \
  do {                                                                   \
    for (const char* trm_needle_ : std::initializer_list<const char*>{__VA_ARGS__}) \
      CHECK_THROWS_WITH_AS(expr, doctest::Contains(trm_needle_), exc);   \
  } while (false)
