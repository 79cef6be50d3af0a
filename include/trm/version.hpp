#pragma once

// Library version. Must match project(trm VERSION ...) in the top-level
// CMakeLists.txt; CMake checks this at configure time and fails on mismatch.

namespace trm {

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;
inline constexpr const char* version_string = "0.1.0";

}  // namespace trm
