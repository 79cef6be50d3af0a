cmake_minimum_required(VERSION 3.25)
# Compile-fail check, run by CTest as:
#   cmake -DSOURCE=<file.cpp> -DFLAGS_FILE=<compile_fail_flags.cmake> -P compile_fail.cmake
#
# The first line of SOURCE must be
#   // expect-error: <CMake regular expression>
#
# Exit status (the tests are registered with WILL_FAIL TRUE, so CTest inverts it):
#   non-zero  <=> the compiler rejected SOURCE AND its output matched the regex
#                 -> CTest reports the test as PASSED
#   zero      <=> anything else: SOURCE compiled, the error text did not match,
#                 or the expect-error line is missing -> test FAILED
# The reason is always printed, so `ctest --output-on-failure` explains failures.

if(NOT SOURCE OR NOT FLAGS_FILE)
  message("compile_fail.cmake: SOURCE and FLAGS_FILE must be given")
  return()  # exit 0 -> the WILL_FAIL test fails
endif()
include("${FLAGS_FILE}")  # defines CF_COMPILER, CF_FLAGS, CF_INCLUDES, CF_IMPLICIT_INCLUDES, CF_DEFINES

file(STRINGS "${SOURCE}" _first LIMIT_COUNT 1)
if(NOT _first MATCHES "^[ \t]*//[ \t]*expect-error:[ \t]*(.*[^ \t\r])[ \t\r]*$")
  message("FAIL: ${SOURCE}: first line must be `// expect-error: <regex>`, got: '${_first}'")
  return()
endif()
set(_regex "${CMAKE_MATCH_1}")

set(_args ${CF_FLAGS})
list(REMOVE_DUPLICATES CF_INCLUDES)
foreach(_inc IN LISTS CF_INCLUDES)
  # Never pass the compiler's own system dirs (-I/usr/include breaks #include_next).
  if(_inc IN_LIST CF_IMPLICIT_INCLUDES)
    continue()
  endif()
  list(APPEND _args "-I${_inc}")
endforeach()
foreach(_def IN LISTS CF_DEFINES)
  list(APPEND _args "-D${_def}")
endforeach()

execute_process(
  COMMAND "${CF_COMPILER}" ${_args} -fsyntax-only -fno-diagnostics-show-caret
          -fdiagnostics-color=never -x c++ "${SOURCE}"
  RESULT_VARIABLE _rc
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _out)

if(_rc EQUAL 0)
  message("FAIL: ${SOURCE} compiled successfully, but a compile error matching '${_regex}' was expected.")
  return()
endif()
if(NOT _out MATCHES "${_regex}")
  message("FAIL: ${SOURCE} failed to compile (as expected), but the compiler output does not match '${_regex}'.\n"
          "---- compiler output ----\n${_out}")
  return()
endif()
message(FATAL_ERROR "OK: ${SOURCE} was rejected with an error matching '${_regex}' "
                    "(non-zero exit = expected failure; the test is WILL_FAIL).")
