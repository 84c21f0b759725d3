// The view contract (pipeline/plugin_host/view_contract.hpp): a pretext task
// that writes too few views, asks for one too many, writes past a view's end
// or leaves a label unset is stopped with a message naming the task, what was
// expected and what was found; through the CLI that is exit 1 with the epoch,
// step and dataset index, never a signal, and `pretext resume` refuses the
// same way. The breaches come from tests/plugins/view_breaches.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/plugin_host/view_contract.hpp"
#include "support/pretext_process.hpp"
#include "support/run_files.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\ndoes not contain\n\"" << part << "\"";
}

/// A view maker whose make_views is a lambda: the breaches, written in the test.
class LambdaViews final : public ViewMaker {
 public:
  using Make = std::function<void(ConstImageView, const ViewSlots&)>;
  LambdaViews(int count, ImageShape shape, Make make) : count_(count), shape_(shape), make_(std::move(make)) {}
  [[nodiscard]] int views_per_image() const override { return count_; }
  [[nodiscard]] ImageShape view_shape(const ImageShape&) const override { return shape_; }
  void make_views(ConstImageView image, std::int64_t, SampleRng&, const ViewSlots& views) const override {
    make_(image, views);
  }

 private:
  int count_;
  ImageShape shape_;
  Make make_;
};

const ImageShape kShape{1, 4, 4};
const std::string kLabel = "pretext plugin 'lambda' (test)";

/// Runs `task` through the guard into a batch-like buffer; returns the fault's message ("" if none).
std::string fault_of(const ViewMaker& task, ViewChecks checks, std::vector<float>* pixels = nullptr,
                     std::vector<std::int64_t>* labels_out = nullptr) {
  const GuardedViewMaker guarded(task, kLabel, checks);
  const int count = guarded.views_per_image();
  const ImageShape shape = guarded.view_shape(kShape);
  std::vector<float> image(kShape.numel());
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i) / 16.0F;
  std::vector<float> out(static_cast<std::size_t>(count) * shape.numel(), -1.0F);
  std::vector<ImageView> views;
  for (int v = 0; v < count; ++v) views.push_back({out.data() + v * shape.numel(), shape});
  std::vector<std::int64_t> labels(static_cast<std::size_t>(count), 99);
  SampleRng rng(1, 0, 0, 0, 0);
  try {
    guarded.make_views({image.data(), kShape}, -1, rng, ViewSlots(views.data(), labels.data(), count));
  } catch (const PluginFault& fault) {
    return fault.what();
  }
  if (pixels != nullptr) *pixels = out;
  if (labels_out != nullptr) *labels_out = labels;
  return "";
}

void copy_all(ConstImageView image, const ViewSlots& views) {
  for (int v = 0; v < views.size(); ++v) {
    copy_image(image, views.view(v));
    views.set_label(v, v);
  }
}

TEST(ViewContract, AWellBehavedTaskPassesAndItsViewsReachTheBatchUnchanged) {
  const LambdaViews task(2, kShape, copy_all);
  for (const ViewChecks checks : {ViewChecks::basic, ViewChecks::guarded}) {
    std::vector<float> pixels;
    std::vector<std::int64_t> labels;
    EXPECT_EQ(fault_of(task, checks, &pixels, &labels), "") << to_string(checks);
    for (std::size_t i = 0; i < pixels.size(); ++i)
      ASSERT_EQ(pixels[i], static_cast<float>(i % 16) / 16.0F) << to_string(checks) << " element " << i;
    EXPECT_EQ(labels, (std::vector<std::int64_t>{0, 1}));
  }
}

TEST(ViewContract, TooFewViewsIsCaughtInBothModes) {
  const LambdaViews task(2, kShape, [](ConstImageView image, const ViewSlots& views) {
    copy_image(image, views.view(0));
    views.set_label(0, 0);
    views.set_label(1, 1);
  });
  EXPECT_TRUE(contains(fault_of(task, ViewChecks::basic),
                       kLabel + ": PretextTask::make_views broke the view contract: view 1 of 2 (1x4x4) was not "
                                "written in full (expected views_per_image() = 2 views, every element written)"));
  EXPECT_TRUE(contains(fault_of(task, ViewChecks::guarded),
                       "view 1 of 2 (1x4x4): 16 of 16 elements not written (expected every element of "
                       "views_per_image() = 2 views)"));
}

TEST(ViewContract, AViewWrittenInPartIsCaughtWhenGuarded) {
  const LambdaViews task(1, kShape, [](ConstImageView image, const ViewSlots& views) {
    const ImageView view = views.view(0);
    for (int y = 0; y < 4; ++y) view.at(0, y, 0) = view.at(0, y, 3) = image.at(0, y, 0);  // the edges only
    views.set_label(0, 0);
  });
  EXPECT_TRUE(contains(fault_of(task, ViewChecks::guarded), "view 0 of 1 (1x4x4): 8 of 16 elements not written"));
}

TEST(ViewContract, OneViewTooManyIsAMessageNotAStrayWrite) {
  const LambdaViews task(2, kShape, [](ConstImageView image, const ViewSlots& views) {
    copy_all(image, views);
    copy_image(image, views.view(2));
  });
  for (const ViewChecks checks : {ViewChecks::basic, ViewChecks::guarded})
    EXPECT_TRUE(contains(fault_of(task, checks),
                         kLabel + ": PretextTask::make_views: view 2 does not exist: this call makes 2 views "
                                  "(views_per_image()), numbered 0 to 1"))
        << to_string(checks);
}

TEST(ViewContract, WritingPastAViewsEndIsCaughtWhenGuarded) {
  // Declares 1x2x4 views and writes whole 1x4x4 images through the raw pointer.
  const LambdaViews task(2, {1, 2, 4}, [](ConstImageView image, const ViewSlots& views) {
    for (int v = 0; v < views.size(); ++v) {
      std::copy_n(image.data, image.shape.numel(), views.view(v).data);
      views.set_label(v, v);
    }
  });
  EXPECT_TRUE(contains(fault_of(task, ViewChecks::guarded),
                       "broke the view contract: wrote 8 floats past the end of view 1 (expected a 1x2x4 view of 8 "
                       "floats, as view_shape() returned"));
}

TEST(ViewContract, ARunOnFromAnInnerViewIsCaughtWhenGuarded) {
  // View 0 runs 8 floats on into where view 1 lives; view 1, written after, hides it in the batch.
  const LambdaViews task(2, {1, 2, 4}, [](ConstImageView image, const ViewSlots& views) {
    std::copy_n(image.data, 16, views.view(0).data);
    std::copy_n(image.data, 8, views.view(1).data);
    views.set_label(0, 0);
    views.set_label(1, 1);
  });
  EXPECT_TRUE(contains(fault_of(task, ViewChecks::guarded), "wrote 8 floats past the end of view 0"));
}

TEST(ViewContract, ATaskThatThrowsAfterWritingPastAViewLeavesNoFalseBreachBehind) {
  // The guarded scratch is per thread and reused; a throw must not leave a dirty guard for the next call.
  const LambdaViews careless(2, {1, 2, 4}, [](ConstImageView image, const ViewSlots& views) {
    std::copy_n(image.data, 16, views.view(1).data);
    throw std::runtime_error("gave up");
  });
  const LambdaViews careful(2, {1, 2, 4}, [](ConstImageView image, const ViewSlots& views) {
    for (int v = 0; v < 2; ++v) {
      std::copy_n(image.data, 8, views.view(v).data);
      views.set_label(v, v);
    }
  });
  EXPECT_TRUE(contains(fault_of(careless, ViewChecks::guarded), "PretextTask::make_views: gave up"));
  EXPECT_EQ(fault_of(careful, ViewChecks::guarded), "");
}

TEST(ViewContract, AMissingOrNegativeLabelIsCaught) {
  const LambdaViews unlabelled(2, kShape, [](ConstImageView image, const ViewSlots& views) {
    copy_image(image, views.view(0));
    copy_image(image, views.view(1));
    views.set_label(0, 0);
  });
  const LambdaViews negative(1, kShape, [](ConstImageView image, const ViewSlots& views) {
    copy_image(image, views.view(0));
    views.set_label(0, -3);
  });
  for (const ViewChecks checks : {ViewChecks::basic, ViewChecks::guarded}) {
    EXPECT_TRUE(contains(fault_of(unlabelled, checks),
                         "view 1 of 2 has no label (expected set_label(1, ...) for every view)"));
    EXPECT_TRUE(contains(fault_of(negative, checks), "view 0 has label -3, expected >= 0"));
  }
}

// ---- through the CLI ------------------------------------------------------------

class ViewBreachRun : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("view-contract");
    images_ = testing::write_synthetic_idx(dir_, "train", 48, 8, 4, 1).images;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_config(const std::string& breach, const std::string& checks) const {
    const fs::path plugins = PRETEXT_TEST_PLUGIN_DIR;
    std::ostringstream text;
    text << "seed = 1\nthreads = 1\n";
    text << "[data]\nsource = \"idx\"\npath = \"" << images_.string() << "\"\ntest_path = \"\"\n";
    text << "labelled = 8\nvalidation = 8\npad_to = 0\n";
    text << "[pipeline]\nthreads = 2\n[trainer]\nautocast = \"none\"\ncheck_views = \"" << checks << "\"\n";
    text << "[evaluation]\nknn = false\nlinear_probe = false\n";
    text << "[model]\nplugin = \"" << (plugins / "pretext_good.so").string() << "\"\n";
    text << "[pretext]\nplugin = \"" << (plugins / "pretext_view_breaches.so").string() << "\"\n";
    text << "epochs = 1\nbatch_size = 8\nbreach = \"" << breach << "\"\n";
    text << "[transfer]\nmodes = [\"finetuned\"]\nepochs = 1\nbatch_size = 8\n";
    const fs::path config = dir_ / (breach + ".toml");
    std::ofstream(config) << text.str();
    return config;
  }

  static testing::ChildExit run_pretext(const std::vector<std::string>& arguments) {
    testing::PretextProcess process(arguments);
    process.start();
    return process.wait(std::chrono::seconds(60));
  }

  fs::path dir_;
  fs::path images_;
};

/// What each breach's message must say, after "pretext plugin 'view_breaches' (FILE): ".
std::string expected_words(const std::string& breach) {
  if (breach == "too_few") return "broke the view contract: view 1 of 2 (1x8x8): 64 of 64 elements not written";
  if (breach == "too_many") return "PretextTask::make_views: view 2 does not exist: this call makes 2 views";
  if (breach == "wrong_shape") return "broke the view contract: wrote 32 floats past the end of view 1";
  return "broke the view contract: view 1 of 2 has no label";
}

TEST_P(ViewBreachRun, ExitsOneNamingTheTaskTheImageAndTheBreachAndResumeRefusesAlike) {
  const std::string breach = GetParam();
  const fs::path run = dir_ / "run";
  const testing::ChildExit first = run_pretext({"run", write_config(breach, "guarded").string(), "--out", run.string()});
  ASSERT_TRUE(first.exited) << "ended by signal " << first.signal << "\n" << first.output;
  EXPECT_EQ(first.code, 1) << first.output;
  const std::string plugin =
      "pretext: plugin fault: pretext plugin 'view_breaches' (" +
      fs::canonical(fs::path(PRETEXT_TEST_PLUGIN_DIR) / "pretext_view_breaches.so").string() + "): ";
  EXPECT_TRUE(contains(first.output, plugin));
  EXPECT_TRUE(contains(first.output, expected_words(breach)));
  // Which batch meets the breach first depends on the graph's threads; that it is named does not.
  EXPECT_TRUE(std::regex_search(first.output, std::regex(R"(\(epoch 1, step [0-9]+, dataset index [0-9]+\)\n)")))
      << first.output;

  // The run directory is left as it was before the first step: resume meets the same breach, and says so.
  const testing::ChildExit again = run_pretext({"resume", run.string()});
  ASSERT_TRUE(again.exited) << "ended by signal " << again.signal << "\n" << again.output;
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_TRUE(contains(again.output, expected_words(breach)));
}

INSTANTIATE_TEST_SUITE_P(Breaches, ViewBreachRun, ::testing::Values("too_few", "too_many", "wrong_shape", "no_label"),
                         [](const auto& info) { return std::string(info.param); });

TEST_F(ViewBreachRun, TheSameTaskWithoutABreachCompletesInEitherMode) {
  // The control: what the tests above see is the breach, not the setup.
  for (const char* checks : {"guarded", "basic"}) {
    const fs::path run = dir_ / (std::string("run-") + checks);
    const testing::ChildExit exit = run_pretext({"run", write_config("none", checks).string(), "--out", run.string()});
    ASSERT_TRUE(exit.exited) << exit.output;
    EXPECT_EQ(exit.code, 0) << exit.output;
    EXPECT_TRUE(fs::exists(run / "summary.json")) << checks;
  }
}

TEST_F(ViewBreachRun, BasicChecksStillCatchTooFewViewsAndMissingLabels) {
  for (const char* breach : {"too_few", "no_label"}) {
    const fs::path run = dir_ / (std::string("run-") + breach);
    const testing::ChildExit exit = run_pretext({"run", write_config(breach, "basic").string(), "--out", run.string()});
    ASSERT_TRUE(exit.exited) << exit.output;
    EXPECT_EQ(exit.code, 1) << exit.output;
    EXPECT_TRUE(contains(exit.output, "broke the view contract: view 1 of 2")) << breach;
  }
}

}  // namespace
}  // namespace pretext
