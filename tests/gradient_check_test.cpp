// NaN and infinite gradients behind a finite loss: the check itself, the
// optimisers that skip such an update, every built-in task's step, and whole
// runs that must stop naming the parameter while keeping their checkpoints
// finite (tests/plugins/nan_gradient.cpp makes the gradients NaN).
#include "pipeline/train/gradient_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "pipeline/train/checkpoint.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/training_context.hpp"
#include "support/builtin_plugin_fixture.hpp"
#include "support/diverging_run.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

namespace fs = std::filesystem;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

/// The message of the NonFiniteGradient `check` throws for `loss`, or "" if it throws none.
std::string finding(GradientCheck& check, double loss = 0.25) {
  try {
    check.throw_if_found(loss);
  } catch (const NonFiniteGradient& e) {
    EXPECT_EQ(e.loss(), loss);
    return e.what();
  }
  return {};
}

torch::nn::Linear linear_with_gradients(const torch::Tensor& weight_grad, const torch::Tensor& bias_grad) {
  torch::nn::Linear linear(3, 2);
  linear->weight.mutable_grad() = weight_grad;
  linear->bias.mutable_grad() = bias_grad;
  return linear;
}

TEST(GradientCheck, FiniteGradientsPass) {
  auto linear = linear_with_gradients(torch::randn({2, 3}), torch::randn({2}));
  GradientCheck check(true);
  EXPECT_TRUE(check.all_finite(linear->parameters()));
  EXPECT_EQ(finding(check), "");
}

TEST(GradientCheck, NamesTheFirstNonFiniteGradientAndItsValue) {
  auto weight_grad = torch::zeros({2, 3});
  weight_grad[1][2] = kNan;
  auto linear = linear_with_gradients(weight_grad, torch::full({2}, -kInf));
  GradientCheck check(true);
  check.name_parameters(*linear, "head");
  EXPECT_FALSE(check.all_finite(linear->parameters()));
  EXPECT_EQ(finding(check), "gradient of head.weight is nan (1 of 6 values not finite)");
  EXPECT_EQ(finding(check), "") << "a finding is reported once";

  // The bias alone: infinite, and the first finding is kept until it is reported.
  EXPECT_FALSE(check.all_finite({linear->bias}));
  EXPECT_FALSE(check.all_finite({linear->weight}));
  EXPECT_EQ(finding(check), "gradient of head.bias is -inf (2 of 2 values not finite)");

  GradientCheck unnamed(true);
  EXPECT_FALSE(unnamed.all_finite({linear->weight}));
  EXPECT_EQ(finding(unnamed), "gradient of a parameter of shape [2, 3] is nan (1 of 6 values not finite)");
}

TEST(GradientCheck, LargeFiniteGradientsWhoseSumOverflowsPass) {
  // Each sum is +inf or -inf in float, and their total is NaN: the exact check must clear them.
  auto linear = linear_with_gradients(torch::full({2, 3}, 3e38F), torch::full({2}, -3e38F));
  GradientCheck check(true);
  EXPECT_TRUE(check.all_finite(linear->parameters()));
  EXPECT_EQ(finding(check), "");
}

TEST(GradientCheck, OffAcceptsEverythingAndUndefinedGradientsAreSkipped) {
  auto linear = linear_with_gradients(torch::full({2, 3}, kNan), torch::full({2}, kInf));
  EXPECT_TRUE(GradientCheck(false).all_finite(linear->parameters()));
  torch::nn::Linear fresh(3, 2);  // no gradients yet
  EXPECT_TRUE(GradientCheck(true).all_finite(fresh->parameters()));
}

class CheckedOptimizer : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckedOptimizer, UpdatesLikeThePlainOneAndSkipsANonFiniteUpdate) {
  OptimizerOptions options;
  options.kind = GetParam();
  options.lr = 0.1;
  torch::manual_seed(3);
  torch::nn::Linear plain_net(3, 2);
  torch::nn::Linear checked_net(3, 2);
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < plain_net->parameters().size(); ++i)
      checked_net->parameters()[i].copy_(plain_net->parameters()[i]);
  }
  auto check = std::make_shared<GradientCheck>(true);
  auto plain = make_optimizer(options, plain_net->parameters());
  auto checked = make_optimizer(options, checked_net->parameters(), check);
  const auto input = torch::randn({4, 3});
  for (int step = 0; step < 3; ++step) {
    for (auto* pair : {&plain, &checked}) (*pair)->zero_grad();
    plain_net->forward(input).pow(2).sum().backward();
    checked_net->forward(input).pow(2).sum().backward();
    plain->step();
    checked->step();
  }
  for (std::size_t i = 0; i < plain_net->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(checked_net->parameters()[i], plain_net->parameters()[i])) << "parameter " << i;
  EXPECT_EQ(finding(*check), "");

  const auto before = checked_net->weight.clone();
  checked->zero_grad();
  const auto output = checked_net->forward(input);
  torch::sqrt(output - output).sum().backward();  // 0, with the gradient inf - inf = NaN
  checked->step();
  EXPECT_TRUE(torch::equal(checked_net->weight, before)) << "the NaN update was applied";
  EXPECT_NE(finding(*check).find("is nan"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(AdamAndSgd, CheckedOptimizer, ::testing::Values("adam", "sgd"));

// pretext.lr_schedule: an update at the rate as made times the factor. A
// state loaded from a checkpoint carries the scaled rate of its last step;
// the factor still scales the rate as made, not the loaded one.
TEST(ScaledOptimizer, UpdatesAtTheRateAsMadeTimesTheFactorAlsoAfterLoadingAState) {
  OptimizerOptions options;
  options.kind = "sgd";
  options.momentum = 0.0;  // an update is -lr x gradient
  options.lr = 0.1;
  torch::manual_seed(5);
  torch::nn::Linear net(3, 2);
  const auto input = torch::randn({4, 3});
  // One step at the factor; the change of the weight and the gradient it came from.
  auto step = [&](torch::optim::Optimizer& optimizer) {
    optimizer.zero_grad();
    net->forward(input).pow(2).sum().backward();
    const auto before = net->weight.detach().clone();
    const auto gradient = net->weight.grad().clone();
    optimizer.step();
    return std::make_pair(net->weight.detach() - before, gradient);
  };

  auto scale = std::make_shared<LearningRateScale>();
  scale->factor = 0.25;
  auto scaled = make_optimizer(options, net->parameters(), nullptr, nullptr, scale);
  const auto [change, gradient] = step(*scaled);
  EXPECT_TRUE(torch::allclose(change, -0.025 * gradient, 1e-6, 1e-7));
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    scaled->save(archive);
    archive.save_to(saved);
  }

  auto fresh_scale = std::make_shared<LearningRateScale>();  // factor 1
  auto resumed = make_optimizer(options, net->parameters(), nullptr, nullptr, fresh_scale);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    resumed->load(archive);
  }
  // The group may hold the scaled rate of the saved step (a state that
  // restores the options does; LibTorch 1.13's load keeps the rate as made):
  // the factor scales the rate as made either way.
  resumed->param_groups()[0].options().set_lr(0.025);
  const auto [full_change, full_gradient] = step(*resumed);
  EXPECT_TRUE(torch::allclose(full_change, -0.1 * full_gradient, 1e-6, 1e-7));
  fresh_scale->factor = 0.5;
  const auto [half_change, half_gradient] = step(*resumed);
  EXPECT_TRUE(torch::allclose(half_change, -0.05 * half_gradient, 1e-6, 1e-7));
}

TEST(ScaledOptimizer, CosineDecayRunsFromOneToZero) {
  EXPECT_DOUBLE_EQ(cosine_decay(0, 100), 1.0);
  EXPECT_NEAR(cosine_decay(50, 100), 0.5, 1e-12);
  EXPECT_NEAR(cosine_decay(25, 100), 0.5 * (1.0 + std::sqrt(0.5)), 1e-12);
  EXPECT_NEAR(cosine_decay(100, 100), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(cosine_decay(0, 0), 1.0);  // no steps: no division by zero
}

// One step from a weight of 1 with a zero gradient, lr 0.1, weight decay
// 0.5. Adam adds the decay to the gradient (0.5), and its first step moves
// by the learning rate: to 0.9. AdamW shrinks the weight apart from the
// gradient, by lr x decay: to 0.95, or 0.975 when a schedule halves the rate.
TEST(Optimizers, AdamWDecaysTheWeightsApartFromTheGradientAndAdamThroughIt) {
  auto one_step = [](const std::string& kind, std::shared_ptr<LearningRateScale> scale) {
    OptimizerOptions options;
    options.kind = kind;
    options.lr = 0.1;
    options.weight_decay = 0.5;
    auto weight = torch::ones({1}, torch::requires_grad());
    auto optimizer = make_optimizer(options, {weight}, nullptr, nullptr, std::move(scale));
    weight.mutable_grad() = torch::zeros_like(weight);
    optimizer->step();
    return weight.item<double>();
  };
  EXPECT_NEAR(one_step("adam", nullptr), 0.9, 1e-6);
  EXPECT_NEAR(one_step("adamw", nullptr), 0.95, 1e-6);
  auto half = std::make_shared<LearningRateScale>();
  half->factor = 0.5;
  EXPECT_NEAR(one_step("adamw", half), 0.975, 1e-6);
}

// ---- every built-in task: a NaN gradient in its backbone is found, and not applied ----

struct BuiltinTask {
  const char* task;
  const char* task_options;
  const char* loss;
};

class BuiltinTaskStep : public testing::BuiltinPluginTest, public ::testing::WithParamInterface<BuiltinTask> {
 protected:
  std::unique_ptr<HostTrainingContext> context(bool check_gradients) {
    auto model_options = section("width = 8\n");
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), model_options);
    auto loss_options = section("");
    loss_ = host_.make_loss(host_.resolve(ComponentKind::loss, GetParam().loss), loss_options);
    Compute compute;
    compute.channels_last = false;
    return std::make_unique<HostTrainingContext>(
        compute, ModelInput{{1, 16, 16}}, model_, loss_, OptimizerOptions{}, "",
        [this](const std::string&) { return loss_; }, check_gradients);
  }
  std::shared_ptr<PretextTask> task() {
    auto options = section(GetParam().task_options);
    return host_.make_pretext(host_.resolve(ComponentKind::pretext, GetParam().task), options);
  }
  std::shared_ptr<Model> model_;
  std::shared_ptr<Loss> loss_;
};

TEST_P(BuiltinTaskStep, ANanGradientInTheBackboneIsFoundAndNotApplied) {
  auto context = this->context(true);
  auto task = this->task();
  task->setup(*context);
  const auto parameters = task->backbone()->named_parameters();
  ASSERT_GT(parameters.size(), 0U);
  // The loss stays what it was; only the gradient that reaches this parameter is NaN.
  parameters[0].value().register_hook([](const torch::Tensor& g) { return torch::full_like(g, kNan); });
  std::vector<torch::Tensor> before;
  for (const auto& p : parameters) before.push_back(p.value().clone());

  const auto images = torch::rand({8, 1, 16, 16});
  const auto labels = torch::arange(8, torch::kLong).remainder(2);  // simclr's pairs; valid rotations too
  const StepResult result = task->train_step(images, labels);
  EXPECT_TRUE(std::isfinite(result.loss)) << result.loss;
  EXPECT_EQ(finding(context->gradient_check(), result.loss),
            "gradient of backbone." + parameters[0].key() + " is nan (" +
                std::to_string(parameters[0].value().numel()) + " of " + std::to_string(parameters[0].value().numel()) +
                " values not finite)");
  for (std::size_t i = 0; i < parameters.size(); ++i)
    EXPECT_TRUE(torch::equal(parameters[i].value(), before[i])) << parameters[i].key() << " was updated";
}

TEST_P(BuiltinTaskStep, WithTheCheckOffTheNanGradientIsApplied) {
  auto context = this->context(false);
  auto task = this->task();
  task->setup(*context);
  auto first = task->backbone()->named_parameters()[0].value();
  first.register_hook([](const torch::Tensor& g) { return torch::full_like(g, kNan); });
  task->train_step(torch::rand({8, 1, 16, 16}), torch::arange(8, torch::kLong).remainder(2));
  EXPECT_EQ(finding(context->gradient_check()), "");
  EXPECT_FALSE(torch::isfinite(first).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(
    Tasks, BuiltinTaskStep,
    ::testing::Values(BuiltinTask{"rotation", "", "cross_entropy"},
                      BuiltinTask{"simclr", "hidden_dim = 16\nprojection_dim = 8\n", "nt_xent"},
                      BuiltinTask{"gan", "latent_dim = 16\ngenerator_width = 8\n", "bce_with_logits"}),
    [](const ::testing::TestParamInfo<BuiltinTask>& info) { return std::string(info.param.task); });

// ---- whole runs ----

class NanGradientRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("nan-gradient");
    const auto train = testing::write_synthetic_idx(dir_, "train", 400, 16, 4, 1);
    config_ = dir_ / "tiny.toml";
    // 280 unlabelled images, one view each, batches of 32: 8 steps an epoch.
    std::ofstream(config_) << "seed = 3\nthreads = 2\n"
                           << "[data]\nsource = \"idx\"\npath = \"" << train.images.string() << "\"\n"
                           << "test_path = \"\"\nlabelled = 60\nvalidation = 60\npad_to = 16\n"
                           << "[pipeline]\nthreads = 2\n"
                           << "[plugins]\nsearch_path = [\"" PRETEXT_TEST_PLUGIN_DIR "\"]\n"
                           << "[model]\nplugin = \"conv4\"\nwidth = 4\n"
                           << "[pretext]\nplugin = \"nan_gradient\"\nepochs = 3\nbatch_size = 32\n"
                           << "[transfer]\nmodes = []\n"
                           << "[evaluation]\nknn = false\nlinear_probe = false\n"
                           << "[checkpoint]\nevery_steps = 3\nkeep = 100\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Runs until TrainingDiverged; its message ("" and a failure if the run finished).
  std::string diverge(const fs::path& out, const std::vector<std::string>& overrides) {
    return testing::run_until_diverged(JobRequest{config_, overrides, out});
  }

  /// The nan_gradient task's step counter and backbone in a checkpoint or pretext.pt.
  struct SavedTask {
    std::int64_t steps = -1;
    bool finite = true;
    int tensors = 0;  // in the backbone, so that "finite" means something
  };
  static SavedTask saved_task(const fs::path& file, bool inside_checkpoint) {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string());
    torch::serialize::InputArchive task;
    if (inside_checkpoint) archive.read("task", task);
    auto& t = inside_checkpoint ? task : archive;
    SavedTask saved;
    torch::Tensor steps;
    t.read("steps", steps);
    saved.steps = steps.item<std::int64_t>();
    torch::serialize::InputArchive backbone;
    t.read("backbone", backbone);
    saved.tensors = finite_tensors(backbone, saved.finite);
    return saved;
  }
  /// Counts the tensors in `archive` and its sub-archives (a module's submodules); `finite` and-ed with each.
  static int finite_tensors(torch::serialize::InputArchive& archive, bool& finite) {
    int count = 0;
    for (const auto& key : archive.keys()) {
      torch::Tensor value;
      torch::serialize::InputArchive nested;
      if (archive.try_read(key, value)) {
        finite = finite && torch::isfinite(value).all().item<bool>();
        ++count;
      } else if (archive.try_read(key, nested)) {
        count += finite_tensors(nested, finite);
      }
    }
    return count;
  }

  fs::path dir_;
  fs::path config_;
};

class NanGradientTask : public NanGradientRun, public ::testing::WithParamInterface<bool> {};

TEST_P(NanGradientTask, StopsNamingTheParameterAndKeepsOnlyFiniteCheckpoints) {
  const auto out = dir_ / "run";
  // Step 13 (epoch 2, step 5) is the first whose gradient is NaN.
  const std::string message = diverge(
      out, {"pretext.nan_after_steps=12", std::string("pretext.own_optimizer=") + (GetParam() ? "true" : "false")});
  EXPECT_NE(message.find("gradient of backbone."), std::string::npos) << message;
  EXPECT_NE(message.find(" is nan ("), std::string::npos) << message;
  EXPECT_NE(message.find("at epoch 2, step 5"), std::string::npos) << message;
  EXPECT_NE(message.find("from epoch 1"), std::string::npos) << message;
  const auto at = message.find("with a loss of ");
  ASSERT_NE(at, std::string::npos) << message;
  EXPECT_TRUE(std::isfinite(std::stod(message.substr(at + 15)))) << message;

  EXPECT_EQ(saved_task(out / "pretext.pt", false).steps, 8);  // epoch 1's
  const auto checkpoints = list_checkpoints(out);
  ASSERT_FALSE(checkpoints.empty());
  EXPECT_EQ(checkpoints.back().filename(), "step-12.pt");
  for (const auto& file : checkpoints) {
    const auto saved = saved_task(file, true);
    EXPECT_GT(saved.tensors, 0) << file;
    EXPECT_TRUE(saved.finite) << file;
  }
  EXPECT_FALSE(fs::exists(out / "summary.json"));
}

INSTANTIATE_TEST_SUITE_P(ContextAndOwnOptimizer, NanGradientTask, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "OwnOptimizer" : "ContextOptimizer");
                         });

TEST_F(NanGradientRun, WithoutTheCheckTheNanGradientReachesACheckpoint) {
  // What the check prevents: NaN weights written at step 13, the loss NaN only at step 14.
  const auto out = dir_ / "run";
  const std::string message =
      diverge(out, {"pretext.nan_after_steps=12", "trainer.check_gradients=false", "checkpoint.every_steps=1"});
  EXPECT_NE(message.find("loss is "), std::string::npos) << message;
  EXPECT_NE(message.find("nan at epoch 2, step 6"), std::string::npos) << message;
  ASSERT_TRUE(fs::exists(out / "checkpoints" / "step-13.pt"));
  EXPECT_FALSE(saved_task(out / "checkpoints" / "step-13.pt", true).finite);
}

TEST_F(NanGradientRun, TransferStopsNamingTheHeadParameter) {
  const std::string message =
      diverge(dir_ / "transfer", {"pretext.plugin=rotation", "pretext.epochs=0", "transfer.modes=[\"fixed\"]",
                                  "transfer.epochs=1", "transfer.loss.plugin=nan_gradient"});
  EXPECT_NE(message.find("gradient of transfer.fixed.head."), std::string::npos) << message;
  EXPECT_NE(message.find("at epoch 1, step 1"), std::string::npos) << message;
}

}  // namespace
}  // namespace pretext
