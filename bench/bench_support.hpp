// Small helpers for pretext-bench: synthetic data, the rotation view maker
// without LibTorch, fixed stage options, PNG writing, /proc readings and JSON rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/image_set.hpp"
#include "pretext/options.hpp"
#include "pretext/stage.hpp"

namespace pretext::bench {

/// `count` random 3x32x32 uint8 images with labels 0..9, the same for a given count.
data::ImageSet synthetic_images(std::size_t count);

/// What plugins/rotation does with rotations = "all": four views, rotated by
/// 0/90/180/270 degrees, labelled 0..3 (the plugin itself needs LibTorch).
class RotationViews final : public ViewMaker {
 public:
  [[nodiscard]] int views_per_image() const override { return 4; }
  void make_views(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                  const ViewSlots& views) const override;
};

/// Answers number reads from a fixed table (falling back to the default), so
/// a built-in stage can be made exactly as a TOML section would make it.
class FixedOptions final : public Options {
 public:
  explicit FixedOptions(std::map<std::string, double> numbers) : numbers_(std::move(numbers)) {}
  [[nodiscard]] std::string path() const override { return "bench"; }
  std::int64_t integer(std::string_view, std::int64_t fallback, std::int64_t, std::int64_t, std::string_view) override {
    return fallback;
  }
  double number(std::string_view key, double fallback, double, double, std::string_view) override;
  bool boolean(std::string_view, bool fallback, std::string_view) override { return fallback; }
  std::string string(std::string_view, std::string_view fallback, std::string_view) override {
    return std::string(fallback);
  }
  std::string choice(std::string_view, std::string_view fallback, const std::vector<std::string>&,
                     std::string_view) override {
    return std::string(fallback);
  }
  std::vector<std::int64_t> integers(std::string_view, std::vector<std::int64_t> fallback, std::int64_t, std::int64_t,
                                     std::string_view) override {
    return fallback;
  }
  [[noreturn]] void fail(std::string_view key, std::string_view expected) override;

 private:
  std::map<std::string, double> numbers_;
};

/// Writes image `i` of `set` (3 channels) as an 8-bit RGB PNG.
void write_rgb_png(const std::filesystem::path& file, const data::ImageSet& set, std::size_t i);

/// A field of /proc/self/status in KiB (e.g. "VmHWM"), or -1 if absent.
long proc_status_kib(const std::string& field);

/// One JSON object on one line, fields in insertion order.
class JsonRow {
 public:
  JsonRow& add(const std::string& key, const std::string& value);
  JsonRow& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonRow& add(const std::string& key, double value);
  JsonRow& add(const std::string& key, long long value);
  JsonRow& add(const std::string& key, int value) { return add(key, static_cast<long long>(value)); }
  JsonRow& add(const std::string& key, std::size_t value) { return add(key, static_cast<long long>(value)); }
  void print() const;

 private:
  std::string body_;
};

double median(std::vector<double> values);

}  // namespace pretext::bench
