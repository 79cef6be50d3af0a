// expect-error: integral
// Self-test: this file compiles, so a compile_fail test on it must FAIL
// (registered without WILL_FAIL, checking for the "compiled successfully" FAIL text).
#include <concepts>

static_assert(std::integral<int>);

int main() { return 0; }
