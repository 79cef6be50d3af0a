#include <trm/trm.hpp>

#include <cstdio>

int main() {
    std::printf("trm consumer: trm %s\n", trm::version_string);
    return 0;
}
