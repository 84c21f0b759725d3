// The `pretext` subcommands. Each lives in its own file and is listed once in
// main.cpp's command table, with its usage text.
#pragma once

#include "cli/arguments.hpp"

namespace pretext::cli {

int run_command(const Arguments& args);      // run_commands.cpp
int resume_command(const Arguments& args);   // resume_command.cpp
int config_command(const Arguments& args);   // run_commands.cpp
int sample_command(const Arguments& args);   // run_commands.cpp
int plugins_command(const Arguments& args);  // run_commands.cpp
int report_command(const Arguments& args);   // report_command.cpp
int export_command(const Arguments& args);   // export_commands.cpp
int embed_command(const Arguments& args);    // export_commands.cpp
int sweep_command(const Arguments& args);    // sweep_command.cpp
int preprocess_command(const Arguments& args);  // preprocess_command.cpp
int launch_command(const Arguments& args);      // launch_command.cpp
int check_plugin_command(const Arguments& args);  // check_plugin_command.cpp

}  // namespace pretext::cli
