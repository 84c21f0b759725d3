// Reading a run directory's files back in tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pretext::testing {

/// The whole file as bytes ("" when it cannot be opened).
inline std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// metrics.csv without the rows that measure time (throughput, data wait),
/// which differ between otherwise identical runs.
inline std::string deterministic_metrics(const std::filesystem::path& file) {
  std::istringstream in(read_file(file));
  std::string out;
  for (std::string line; std::getline(in, line);)
    if (line.find("per_second") == std::string::npos && line.find("wait") == std::string::npos) out += line + "\n";
  return out;
}

}  // namespace pretext::testing
