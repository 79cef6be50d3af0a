cmake_minimum_required(VERSION 3.25)
# cuda_compile test: passes iff every file listed in LIST_FILE (one per
# list element, written at generate time) exists, i.e. nvcc compiled and
# linked every tests/cuda/*.cu executable. Nothing is run.
include("${LIST_FILE}")  # sets TRM_CUDA_EXECUTABLES
set(missing "")
foreach(f IN LISTS TRM_CUDA_EXECUTABLES)
  if(EXISTS "${f}")
    message("built: ${f}")
  else()
    list(APPEND missing "${f}")
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "not built: ${missing}")
endif()
if(NOT TRM_CUDA_EXECUTABLES)
  message(FATAL_ERROR "no tests/cuda/*.cu executables were configured")
endif()
