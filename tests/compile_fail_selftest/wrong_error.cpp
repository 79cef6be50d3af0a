// expect-error: this text never appears in any compiler diagnostic
// Self-test: this file fails to compile, but not with the expected message,
// so a compile_fail test on it must FAIL.
#include <concepts>

static_assert(std::integral<double>);

int main() { return 0; }
