// expect-error: no matching function for call to
// Memory spaces are part of a view's type: a device view handed to a host (trm::cpu) op does not
// compile, instead of crashing at run time. (The op's parameters are host views and a view never
// converts between memory spaces, so overload resolution finds no candidate.)
#include <trm/trm.hpp>

int main() {
  trm::MatrixView<const float, trm::device_space> src;
  trm::MatrixView<float> dst;
  trm::cpu::copy(src, dst);
}
