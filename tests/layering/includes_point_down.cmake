# The layering, lowest first: common/ -> data/, sdk/ (include/pretext/) ->
# stages/ -> pipeline/ -> cli/. An include only points down. This script checks
# the layers below pipeline/: every `#include "..."` of a file there must name a
# header of an allowed folder, so nothing in them reaches pipeline/ or cli/.
#
#   cmake -DSOURCE_DIR=<repo> -P includes_point_down.cmake
#
# Fails listing every offending file:line and the include it found.
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "pass -DSOURCE_DIR=<repository root>")
endif()

# folder -> the folders its files may include from (quoted includes only;
# <system> headers are the build's business).
set(allowed_common "common/")
set(allowed_sdk "pretext/")
set(allowed_include "pretext/")
set(allowed_data "common/;data/;pretext/")
set(allowed_stages "common/;data/;pretext/;stages/")

set(violations "")
set(checked 0)
foreach(layer common sdk include data stages)
  file(GLOB_RECURSE files "${SOURCE_DIR}/${layer}/*.hpp" "${SOURCE_DIR}/${layer}/*.cpp" "${SOURCE_DIR}/${layer}/*.h")
  foreach(file IN LISTS files)
    math(EXPR checked "${checked} + 1")
    file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    file(RELATIVE_PATH relative "${SOURCE_DIR}" "${file}")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" header "${line}")
      set(ok FALSE)
      foreach(prefix IN LISTS allowed_${layer})
        string(FIND "${header}" "${prefix}" at)
        if(at EQUAL 0)
          set(ok TRUE)
        endif()
      endforeach()
      # A header beside the file (no folder), e.g. "memory_file.hpp", is its own layer's.
      if(NOT header MATCHES "/")
        set(ok TRUE)
      endif()
      if(NOT ok)
        string(APPEND violations "\n  ${relative}: #include \"${header}\" (${layer}/ may include only: ${allowed_${layer}})")
      endif()
    endforeach()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "no source files found under ${SOURCE_DIR}: wrong SOURCE_DIR?")
endif()
if(violations)
  message(FATAL_ERROR "includes that point up, out of their layer:${violations}")
endif()
message(STATUS "layering: ${checked} files, every include points down")
