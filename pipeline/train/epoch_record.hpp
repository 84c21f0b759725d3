// One epoch's figures, recorded the same way by every phase (pretext and each
// transfer mode): rows of metrics.csv, and one line of progress.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/train/progress.hpp"

namespace pretext {

class EpochRecord {
 public:
  /// `epoch` is 1-based, of `epochs` in the phase.
  EpochRecord(std::string phase, std::int64_t epoch, std::int64_t epochs)
      : phase_(std::move(phase)), epoch_(epoch), epochs_(epochs) {}

  /// A metrics.csv row; `shown`, when not empty, is also a part of the line.
  EpochRecord& add(std::string_view metric, double value, std::string shown = {});

  /// Adds the rows to `dir` (kept in memory until dir.flush_metrics()).
  void record(artefacts::RunDirectory& dir) const;
  /// "PHASE epoch E/N: shown, shown, ..." as a line that stays.
  void print(Progress& progress) const;
  /// record(), flush_metrics() and print(): an epoch with nothing in between.
  void commit(artefacts::RunDirectory& dir, Progress& progress) const;

 private:
  std::string phase_;
  std::int64_t epoch_;
  std::int64_t epochs_;
  std::vector<std::pair<std::string, double>> rows_;
  std::vector<std::string> shown_;
};

}  // namespace pretext
