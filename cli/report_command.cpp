// pretext report
#include <iostream>

#include "cli/commands.hpp"
#include "pipeline/report/html_report.hpp"

namespace pretext::cli {

int report_command(const Arguments& args) {
  const std::filesystem::path dir = args.single("RUN_DIR or SWEEP_DIR");
  std::cout << report::write_report(dir).string() << '\n';
  return 0;
}

}  // namespace pretext::cli
