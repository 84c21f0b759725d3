#include "data/preprocess.hpp"

#include <chrono>
#include <cstdio>
#include <string>

#include "data/packed.hpp"
#include "data/data_source.hpp"

namespace pretext::data {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", seconds);
  return text;
}

std::string rate(double images, double seconds) {
  char text[64];
  std::snprintf(text, sizeof text, "%.0f images/s", seconds > 0 ? images / seconds : 0.0);
  return text;
}

}  // namespace

PreprocessResult preprocess_to_packed(const DataOptions& d, const std::filesystem::path& out, std::ostream& log,
                                      const Shard& shard) {
  const auto started = Clock::now();
  LoadCallbacks callbacks;
  bool progress_line_open = false;  // "\r" progress is ended by the next line
  auto end_progress_line = [&] {
    if (progress_line_open) log << '\n';
    progress_line_open = false;
  };
  callbacks.report_skip = [&](const std::string& message) {
    end_progress_line();
    log << "preprocess: skipped " << message << '\n';
  };
  callbacks.progress = [&](std::size_t done, std::size_t total) {
    progress_line_open = true;
    const double elapsed = seconds_since(started);
    log << "\rpreprocess: decoded " << done << "/" << total << " images, " << rate(double(done), elapsed) << std::flush;
  };
  LoadedData loaded;
  try {
    loaded = load_data_source(d, d.path, d.labels_path, callbacks, shard);
  } catch (...) {
    end_progress_line();  // the error gets a line of its own
    throw;
  }
  end_progress_line();
  if (d.pad_to > 0) pad_to(loaded.images, static_cast<int>(d.pad_to));
  const double loaded_seconds = seconds_since(started);
  write_packed(out, loaded.images, loaded.classes);

  PreprocessResult result{loaded.images.size(), loaded.skipped, seconds_since(started)};
  const ImageShape& s = loaded.images.shape;
  // Which images of the source this shard holds, so the hosts' logs can be checked against each other.
  if (!shard.whole())
    log << "preprocess: shard " << shard.index << "/" << shard.count << ": images " << loaded.first << ".."
        << shard.last(loaded.total) - 1 << " of " << loaded.total << "\n";
  log << "preprocess: " << result.images << " images of " << s.channels << "x" << s.height << "x" << s.width << " from "
      << d.path << " (" << d.source << ") in " << seconds_text(loaded_seconds) << ", "
      << rate(double(result.images), loaded_seconds) << "; " << result.skipped << " skipped; written in "
      << seconds_text(result.seconds - loaded_seconds) << "\n";
  return result;
}

}  // namespace pretext::data
