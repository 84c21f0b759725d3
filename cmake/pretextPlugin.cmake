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
function(pretext_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUTPUT_DIRECTORY" "SOURCES")
  set(sources ${arg_SOURCES} ${arg_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "pretext_add_plugin(${name}): no SOURCES given")
  endif()
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
