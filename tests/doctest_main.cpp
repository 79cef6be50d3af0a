// The single translation unit that provides doctest's main(); linked into
// every test executable through the trm_test_main library.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
