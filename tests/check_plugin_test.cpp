// `pretext check-plugin` (pipeline/check/plugin_check.hpp) through the CLI:
// it passes on every built-in component, names the problem of each broken
// test plugin on its own FAIL line (exit 1), finds a library by the name it
// registers, and refuses a name nothing registers (exit 2).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "pretext/sdk.hpp"
#include "support/pretext_process.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

const fs::path kTestPlugins = PRETEXT_TEST_PLUGIN_DIR;

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\ndoes not contain\n\"" << part << "\"";
}

testing::ChildExit check_plugin(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), "check-plugin");
  testing::PretextProcess process(arguments);
  process.start();
  return process.wait(std::chrono::seconds(120));
}

class BuiltinComponent : public ::testing::TestWithParam<const char*> {};

TEST_P(BuiltinComponent, PassesEveryCheck) {
  const testing::ChildExit exit = check_plugin({GetParam()});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 0) << exit.output;
  EXPECT_TRUE(contains(exit.output, "ABI: plugin API " + std::to_string(kPluginApiMajor) + "."));
  EXPECT_TRUE(contains(exit.output, " checks passed, 0 failed"));
  EXPECT_FALSE(contains(exit.output, "FAIL"));
}

INSTANTIATE_TEST_SUITE_P(Plugins, BuiltinComponent,
                         ::testing::Values("rotation", "gan", "simclr", "conv4", "resnet18", "cross_entropy",
                                           "bce_with_logits", "nt_xent"));

TEST(CheckPlugin, ATaskRunsEveryCheckInOrder) {
  const testing::ChildExit exit = check_plugin({"rotation"});
  ASSERT_TRUE(exit.exited) << exit.output;
  std::size_t at = 0;
  for (const char* line : {"registers: pretext 'rotation'", "ok    make", "ok    views  4 views of 3x32x32",
                           "labels {0,1,2,3}", "ok    seeded", "ok    threads", "ok    train", "ok    save/load",
                           "passed: 6 checks passed, 0 failed"}) {
    at = exit.output.find(line, at);
    ASSERT_NE(at, std::string::npos) << "missing, or out of order: " << line << "\n" << exit.output;
  }
}

struct Breach {
  const char* breach;
  const char* words;  // on the FAIL views line
};

class BrokenTask : public ::testing::TestWithParam<Breach> {};

TEST_P(BrokenTask, FailsTheViewsCheckNamingTheBreach) {
  const testing::ChildExit exit = check_plugin({(kTestPlugins / "pretext_view_breaches.so").string(), "--set",
                                                std::string("pretext.breach=") + GetParam().breach});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_TRUE(contains(exit.output, "  FAIL  views  pretext plugin 'view_breaches' ("));
  EXPECT_TRUE(contains(exit.output, GetParam().words));
  EXPECT_TRUE(contains(exit.output, "FAILED: 1 checks passed, 1 failed"));
}

INSTANTIATE_TEST_SUITE_P(
    Breaches, BrokenTask,
    ::testing::Values(Breach{"too_few", "view 1 of 2 (3x32x32): 3072 of 3072 elements not written"},
                      Breach{"too_many", "view 2 does not exist: this call makes 2 views"},
                      Breach{"wrong_shape", "wrote 1536 floats past the end of view 1 (expected a 3x16x32 view"},
                      Breach{"no_label", "view 1 of 2 has no label"}),
    [](const auto& info) { return std::string(info.param.breach); });

TEST(CheckPlugin, TheBreachPluginWithoutABreachPasses) {
  // The control for the tests above.
  const testing::ChildExit exit = check_plugin({(kTestPlugins / "pretext_view_breaches.so").string()});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 0) << exit.output;
}

TEST(CheckPlugin, ALoadThatForgetsPartOfTheStateFailsTheSaveLoadCheckNamingIt) {
  const testing::ChildExit exit = check_plugin(
      {(kTestPlugins / "pretext_view_breaches.so").string(), "--set", "pretext.breach=load_skips_head"});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_TRUE(contains(exit.output, "  FAIL  save/load  'head."));
  EXPECT_TRUE(contains(exit.output, "differs after save -> load -> save: load() does not restore it"));
  EXPECT_TRUE(contains(exit.output, "FAILED: 5 checks passed, 1 failed"));
}

TEST(CheckPlugin, AFaultInTrainStepFailsTheTrainCheckAndTheOthersStillRun) {
  const testing::ChildExit exit = check_plugin({(kTestPlugins / "pretext_faulty.so").string(), "--set",
                                                "pretext.fault=train_step", "--set", "pretext.fault_after=1"});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_TRUE(contains(exit.output, "  FAIL  train  pretext plugin 'faulty' ("));
  EXPECT_TRUE(contains(exit.output, "PretextTask::train_step: injected fault in train_step"));
  EXPECT_TRUE(contains(exit.output, "model 'faulty_model':\n  ok    networks"));
}

TEST(CheckPlugin, FindsAMisnamedLibraryByTheNameItRegistersAndSaysSo) {
  ::setenv("PRETEXT_PLUGIN_PATH", kTestPlugins.c_str(), 1);  // the child inherits it
  const testing::ChildExit exit = check_plugin({"renamed-loss"});
  ::unsetenv("PRETEXT_PLUGIN_PATH");
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 0) << exit.output;
  EXPECT_TRUE(contains(exit.output, "library: " + fs::canonical(kTestPlugins / "pretext_misnamed.so").string()));
  EXPECT_TRUE(contains(exit.output, "note: found by the name it registers; the file a name is looked up by first "
                                    "is pretext_renamed-loss.so"));
}

TEST(CheckPlugin, ANameNothingRegistersIsExitTwo) {
  const testing::ChildExit exit = check_plugin({"no-such-component"});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 2) << exit.output;
  EXPECT_TRUE(contains(exit.output, "no model, pretext task, loss or stage is named 'no-such-component'"));
}

TEST(CheckPlugin, APluginForThePreviousApiIsExitTwo) {
  const testing::ChildExit exit = check_plugin({(kTestPlugins / "pretext_api_v1.so").string()});
  ASSERT_TRUE(exit.exited) << exit.output;
  EXPECT_EQ(exit.code, 2) << exit.output;
  EXPECT_TRUE(contains(exit.output, "plugin API major version mismatch: expected 2, found 1"));
}

}  // namespace
}  // namespace pretext
