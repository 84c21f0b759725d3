#include "pipeline/report/html_report.hpp"

#include "common/errors.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/report/sweep_manifest.hpp"

namespace pretext::report {

std::filesystem::path write_report(const std::filesystem::path& dir) {
  if (std::filesystem::is_regular_file(dir / kSweepManifestName)) return write_sweep_report(dir);
  if (std::filesystem::is_regular_file(artefacts::RunLayout(dir).metrics())) return write_run_report(dir);
  if (!std::filesystem::is_directory(dir)) throw InputError(dir.string() + ": no such directory");
  throw InputError(dir.string() + ": neither " + kSweepManifestName +
                   " (a sweep directory) nor metrics.csv (a run directory written by pretext run)");
}

}  // namespace pretext::report
