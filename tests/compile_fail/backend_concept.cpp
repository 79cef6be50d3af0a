// expect-error: satisfaction of .?.?.Backend<
// A type without the backend op set (memory_space, name, gemm, copy, ...) cannot be used as a
// layer's backend: the layer's `Backend B` constraint rejects it by name.
#include <trm/trm.hpp>

struct PlainStruct {};  // the name must not contain the concept's name

trm::Linear<4, 4, false, float, PlainStruct> layer;

int main() {}
