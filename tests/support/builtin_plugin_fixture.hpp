// A fixture for tests of the built-in plugins: a host searching the build's
// plugin directory, and option sections parsed from TOML text.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "pipeline/config/document.hpp"
#include "pipeline/config/section.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"

namespace pretext::testing {

class BuiltinPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    host_.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
  }
  /// The options a plugin reads, from `toml` (kept alive by the fixture).
  config::Section section(const std::string& toml) {
    documents_.push_back(std::make_unique<config::Document>(config::Document::parse(toml, "test.toml")));
    return config::Section(*documents_.back(), "");
  }
  PluginHost host_;
  std::vector<std::unique_ptr<config::Document>> documents_;
};

}  // namespace pretext::testing
