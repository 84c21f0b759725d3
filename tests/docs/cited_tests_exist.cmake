# docs.CitedTestsExist: every test a document cites in backticks, `Suite.Name`,
# must be a test CTest runs, so that a renamed or deleted test cannot leave a
# document pointing at it (docs/reliability.md names the test for each fault).
#
#   cmake -DCTEST=... -DBUILD_DIR=... -DSOURCE_DIR=... -P cited_tests_exist.cmake
#
# A cited name matches a test whose whole name it is, or a parameterised
# instance of it: `Suite.Name` matches Prefix/Suite.Name/Param, and
# `Prefix/Suite.Name/Param` only itself.
execute_process(COMMAND "${CTEST}" -N WORKING_DIRECTORY "${BUILD_DIR}" OUTPUT_VARIABLE listing
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "ctest -N in ${BUILD_DIR} failed (${status}): ${listing}")
endif()

file(GLOB documents "${SOURCE_DIR}/docs/*.md")
list(APPEND documents "${SOURCE_DIR}/README.md" "${SOURCE_DIR}/bench/README.md")
set(checked 0)
set(missing "")
foreach(document IN LISTS documents)
  file(READ "${document}" text)
  string(REGEX MATCHALL "`([A-Za-z0-9_]+/)?[A-Z][A-Za-z0-9_]*\\.[A-Z][A-Za-z0-9_]*(/[A-Za-z0-9_]+)?`" cites "${text}")
  list(REMOVE_DUPLICATES cites)
  foreach(cite IN LISTS cites)
    string(REPLACE "`" "" name "${cite}")
    string(REPLACE "." "\\." pattern "${name}")
    string(REGEX MATCH "[ /]${pattern}([/ ][^\n]*)?\n" found "${listing}")  # " # GetParam() = 2" may follow
    math(EXPR checked "${checked} + 1")
    if(NOT found)
      file(RELATIVE_PATH shown "${SOURCE_DIR}" "${document}")
      string(APPEND missing "\n  ${shown}: ${name}")
    endif()
  endforeach()
endforeach()

if(missing)
  message(FATAL_ERROR "documents cite tests that CTest does not know (renamed or deleted?):${missing}")
endif()
message(STATUS "${checked} cited tests found")
