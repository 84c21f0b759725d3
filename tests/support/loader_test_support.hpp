// Helpers for the dataset-loader tests (data_test.cpp, svhn_mat_test.cpp):
// a private temporary directory per test, and a check that a load fails with
// an InputError naming the file.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/errors.hpp"

namespace pretext::testing {

namespace fs = std::filesystem;

/// A directory of its own for one test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("pretext_data_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++) + "_" + (test ? test->name() : "setup"));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;

  [[nodiscard]] fs::path file(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// Runs `load`, expects an InputError, and checks its message names `file`
/// and contains each of `fragments`.
inline void expect_input_error(const std::function<void()>& load, const fs::path& file,
                        const std::vector<std::string>& fragments = {}) {
  try {
    load();
    ADD_FAILURE() << "expected InputError for " << file;
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(file.filename().string()), std::string::npos) << "message: " << message;
    for (const auto& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "missing '" << fragment << "' in: " << message;
    }
  } catch (const std::exception& error) {
    ADD_FAILURE() << "expected InputError, got another exception: " << error.what();
  }
}

inline void truncate_file(const fs::path& file, std::uintmax_t new_size) { fs::resize_file(file, new_size); }

inline void write_bytes(const fs::path& file, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

}  // namespace pretext::testing
