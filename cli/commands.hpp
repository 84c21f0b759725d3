// The `pretext` subcommands. Each lives in its own file and is listed once in
// main.cpp's command table, with its usage text.
#pragma once

#include "cli/arguments.hpp"

namespace pretext::cli {

int run_command(const Arguments& args);      // run_commands.cpp
int config_command(const Arguments& args);   // run_commands.cpp
int sample_command(const Arguments& args);   // run_commands.cpp
int plugins_command(const Arguments& args);  // run_commands.cpp

}  // namespace pretext::cli
