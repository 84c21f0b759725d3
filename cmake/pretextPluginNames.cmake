# _pretext_check_registered_names(TARGET_NAME source...)
#
# The host finds a component named N in pretext_N.so first; a library whose
# file name matches none of the names it registers is only found by loading
# every library on the search path (docs/writing-a-pretext-task.md). This
# warns at configure time, without running any code: it reads the names
# passed as string literals to registrar.add_model/add_pretext/add_loss/
# add_stage in the sources. Names built at run time are not seen.
function(_pretext_check_registered_names name)
  set(registered "")
  foreach(source IN LISTS ARGN)
    get_filename_component(path "${source}" ABSOLUTE)
    if(NOT EXISTS "${path}")
      continue()
    endif()
    file(STRINGS "${path}" lines REGEX "add_(model|pretext|loss|stage)[ \t]*\\([ \t]*\"[^\"]+\"")
    foreach(line IN LISTS lines)
      string(REGEX MATCHALL "add_(model|pretext|loss|stage)[ \t]*\\([ \t]*\"[^\"]+\"" calls "${line}")
      foreach(call IN LISTS calls)
        string(REGEX REPLACE ".*\"([^\"]+)\"" "\\1" registered_name "${call}")
        list(APPEND registered "${registered_name}")
      endforeach()
    endforeach()
  endforeach()
  if(registered AND NOT name IN_LIST registered)
    list(JOIN registered ", " names)
    message(WARNING "pretext_add_plugin(${name}): the library is pretext_${name}.so, but it registers ${names}. "
                    "pretext looks for pretext_<name>.so first and otherwise loads every library on its search "
                    "path to find the name; name the target after a component it registers, or refer to the "
                    "library by its path in configs.")
  endif()
endfunction()
