# Use ccache when the machine has it. PCH needs the sloppiness settings below,
# otherwise every precompiled-header build misses the cache.
find_program(PRETEXT_CCACHE ccache)
if(PRETEXT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      ${PRETEXT_CCACHE})
  message(STATUS "pretext: using ccache at ${PRETEXT_CCACHE}")
endif()
