// expect-error: integral
// Self-test of the compile-fail mechanism: this must be rejected, and GCC's
// and Clang's diagnostics both mention the failed concept std::integral.
#include <concepts>

template <std::integral T>
constexpr T twice(T v) { return v + v; }

constexpr double x = twice(1.5);

int main() { return static_cast<int>(x); }
