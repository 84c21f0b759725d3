cmake_minimum_required(VERSION 3.25)
# Runs the configure-time check of pretext_add_plugin on one source file:
#   cmake -DSOURCE_DIR=<repo> -DNAME=<target name> -DSOURCE=<file> -P registered_names_test.cmake
# CTest matches the warning (or its absence) in the output.
include(${SOURCE_DIR}/cmake/pretextPluginNames.cmake)
_pretext_check_registered_names(${NAME} ${SOURCE})
message(STATUS "checked ${NAME} against ${SOURCE}")
