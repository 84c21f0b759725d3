#include "pipeline/train/epoch_record.hpp"

namespace pretext {

EpochRecord& EpochRecord::add(std::string_view metric, double value, std::string shown) {
  rows_.emplace_back(std::string(metric), value);
  if (!shown.empty()) shown_.push_back(std::move(shown));
  return *this;
}

void EpochRecord::record(artefacts::RunDirectory& dir) const {
  for (const auto& [metric, value] : rows_) dir.add_metric(phase_, static_cast<int>(epoch_), metric, value);
}

void EpochRecord::print(Progress& progress) const {
  std::string line = phase_ + " epoch " + std::to_string(epoch_) + "/" + std::to_string(epochs_) + ":";
  for (std::size_t i = 0; i < shown_.size(); ++i) line += (i == 0 ? " " : ", ") + shown_[i];
  progress.line(line);
}

void EpochRecord::commit(artefacts::RunDirectory& dir, Progress& progress) const {
  record(dir);
  dir.flush_metrics();
  print(progress);
}

}  // namespace pretext
