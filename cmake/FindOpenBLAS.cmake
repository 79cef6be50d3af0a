# FindOpenBLAS.cmake -- locate OpenBLAS (CBLAS interface) for trm.
#
# Installed next to trmConfig.cmake so that consumers of an installed trm
# re-find the same library.
#
# Input (optional): OpenBLAS_ROOT (CMake >= 3.12 honours <Pkg>_ROOT), or
#                   OpenBLAS_INCLUDE_DIR / OpenBLAS_LIBRARY set in the cache.
# Output:
#   OpenBLAS_FOUND, OpenBLAS_INCLUDE_DIRS, OpenBLAS_LIBRARIES, OpenBLAS_VERSION
#   Imported target OpenBLAS::OpenBLAS
#
# Debian/Ubuntu: package libopenblas-dev. Its headers live in
# /usr/include/<multiarch>/openblas-pthread/ (the plain <multiarch>/cblas.h is
# an alternatives link that may point at netlib's cblas), so we look for
# openblas_config.h, which only OpenBLAS ships, and take cblas.h from that dir.

set(_trm_openblas_suffixes
    openblas-pthread openblas-openmp openblas-serial openblas openblas64)

find_path(OpenBLAS_INCLUDE_DIR
  NAMES openblas_config.h
  PATH_SUFFIXES ${_trm_openblas_suffixes}
  DOC "Directory containing OpenBLAS' cblas.h and openblas_config.h")

if(OpenBLAS_INCLUDE_DIR AND NOT EXISTS "${OpenBLAS_INCLUDE_DIR}/cblas.h")
  # OpenBLAS built without CBLAS (NO_CBLAS=1): unusable for trm.
  set(OpenBLAS_INCLUDE_DIR "OpenBLAS_INCLUDE_DIR-NOTFOUND" CACHE PATH
      "Directory containing OpenBLAS' cblas.h" FORCE)
endif()

find_library(OpenBLAS_LIBRARY
  NAMES openblas openblasp openblas64
  PATH_SUFFIXES ${_trm_openblas_suffixes}
  DOC "OpenBLAS library")

if(OpenBLAS_INCLUDE_DIR AND EXISTS "${OpenBLAS_INCLUDE_DIR}/openblas_config.h")
  file(STRINGS "${OpenBLAS_INCLUDE_DIR}/openblas_config.h" _trm_ob_ver
       REGEX "^#define OPENBLAS_VERSION \" OpenBLAS [0-9.]+")
  if(_trm_ob_ver MATCHES "OpenBLAS ([0-9.]+)")
    set(OpenBLAS_VERSION "${CMAKE_MATCH_1}")
  endif()
  unset(_trm_ob_ver)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenBLAS
  REQUIRED_VARS OpenBLAS_LIBRARY OpenBLAS_INCLUDE_DIR
  VERSION_VAR OpenBLAS_VERSION)

if(OpenBLAS_FOUND)
  set(OpenBLAS_INCLUDE_DIRS "${OpenBLAS_INCLUDE_DIR}")
  set(OpenBLAS_LIBRARIES "${OpenBLAS_LIBRARY}")
  if(NOT TARGET OpenBLAS::OpenBLAS)
    add_library(OpenBLAS::OpenBLAS UNKNOWN IMPORTED)
    set_target_properties(OpenBLAS::OpenBLAS PROPERTIES
      IMPORTED_LOCATION "${OpenBLAS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIR}")
  endif()
endif()

mark_as_advanced(OpenBLAS_INCLUDE_DIR OpenBLAS_LIBRARY)
unset(_trm_openblas_suffixes)
