# pretext_add_plugin(NAME SOURCES source... [OUTPUT_DIRECTORY dir])
#
# Builds a pretext plugin out of tree: a loadable module named
# pretext_<NAME>.so that `pretext` finds by NAME on its plugin search path
# (plugins.search_path in the config, or $PRETEXT_PLUGIN_PATH).
#
# What it sets, and why:
#   * MODULE library, no "lib" prefix: the host loads it with dlopen only;
#   * hidden visibility: the library's only exports are the two symbols that
#     PRETEXT_PLUGIN() marks (the ABI descriptor and the register function);
#   * LibTorch's flags (-D_GLIBCXX_USE_CXX11_ABI=...) and C++17: a mismatch
#     with the host is refused at load, this makes it not happen;
#   * links pretext::sdk (headers + libpretext_sdk) and LibTorch.
include("${CMAKE_CURRENT_LIST_DIR}/pretextPluginNames.cmake")

function(pretext_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUTPUT_DIRECTORY" "SOURCES")
  set(sources ${arg_SOURCES} ${arg_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "pretext_add_plugin(${name}): no SOURCES given")
  endif()
  _pretext_check_registered_names(${name} ${sources})
  add_library(${name} MODULE ${sources})
  set_target_properties(${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "pretext_${name}"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    CXX_EXTENSIONS OFF)
  if(arg_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}")
  endif()
  target_compile_features(${name} PRIVATE cxx_std_17)
  target_link_libraries(${name} PRIVATE pretext::sdk ${TORCH_LIBRARIES})
  target_include_directories(${name} SYSTEM PRIVATE ${TORCH_INCLUDE_DIRS})
  separate_arguments(_pretext_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(${name} PRIVATE ${_pretext_torch_flags})
endfunction()

# pretext_add_plugin_test(NAME SOURCES source... PLUGIN plugin_target)
#
# A GoogleTest executable that tests a plugin through the test kit
# (#include "pretext/testing.hpp"), registered with CTest as NAME. The test
# finds the built plugin through the PRETEXT_PLUGIN_FILE macro, the path of
# PLUGIN's file, and the plugin is built before the test.
#
# GoogleTest and Boost.Filesystem (Boost.DLL's, for load_plugin) are looked
# for here, when a project asks for a test, so find_package(pretext) works
# without them. Call enable_testing() first in the top-level CMakeLists.txt.
function(pretext_add_plugin_test name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "PLUGIN" "SOURCES")
  set(sources ${arg_SOURCES} ${arg_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "pretext_add_plugin_test(${name}): no SOURCES given")
  endif()
  if(NOT arg_PLUGIN OR NOT TARGET ${arg_PLUGIN})
    message(FATAL_ERROR "pretext_add_plugin_test(${name}): PLUGIN must name a target from pretext_add_plugin()")
  endif()
  if(NOT TARGET GTest::gtest_main)
    find_package(GTest REQUIRED)
  endif()
  if(NOT TARGET Boost::filesystem)
    find_package(Boost 1.74 REQUIRED COMPONENTS filesystem)
  endif()

  add_executable(${name} ${sources})
  set_target_properties(${name} PROPERTIES CXX_EXTENSIONS OFF)
  target_compile_features(${name} PRIVATE cxx_std_17)
  # The same LibTorch flags as the plugin: the kit passes LibTorch objects to it.
  target_link_libraries(${name} PRIVATE GTest::gtest_main pretext::sdk ${TORCH_LIBRARIES} Boost::filesystem
                                        ${CMAKE_DL_LIBS})
  target_include_directories(${name} SYSTEM PRIVATE ${TORCH_INCLUDE_DIRS})
  separate_arguments(_pretext_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(${name} PRIVATE ${_pretext_torch_flags})
  target_compile_definitions(${name} PRIVATE "PRETEXT_PLUGIN_FILE=\"$<TARGET_FILE:${arg_PLUGIN}>\"")
  add_dependencies(${name} ${arg_PLUGIN})
  add_test(NAME ${name} COMMAND ${name})
endfunction()
