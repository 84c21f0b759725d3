// Transfer modes on tiny synthetic data: what each mode may and may not change.
#include "pipeline/train/transfer.hpp"

#include <gtest/gtest.h>

#include "pipeline/config/section.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/train/training_context.hpp"
#include "support/synthetic_idx.hpp"

namespace pretext {
namespace {

class TransferModes : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("transfer");
    const auto files = testing::write_synthetic_idx(dir_, "train", 120, 16, 4, 5);
    train_ = data::load_idx(files.images, files.labels);
    split_ = data::split_indices(train_.size(), 40, 40, 0, 0, train_.origin);
    validation_ = decode_subset(train_, split_.validation);
    document_ = std::make_unique<config::Document>(config::Document::parse("width = 8\n", "model.toml"));
    config::Section model_options(*document_, "");
    host_.set_search_path({PRETEXT_BUILTIN_PLUGIN_DIR});
    model_ = host_.make_model(host_.resolve(ComponentKind::model, "conv4"), model_options);
    auto loss_document = config::Document::parse("", "loss.toml");
    config::Section loss_options(loss_document, "");
    loss_ = host_.make_loss(host_.resolve(ComponentKind::loss, "cross_entropy"), loss_options);
    options_.transfer.epochs = 2;
    options_.transfer.batch_size = 8;
    options_.transfer.head_lr = 0.01;
    options_.pipeline.threads = 1;
    torch::manual_seed(0);
    pretrained_ = model_->make_backbone({train_.shape});
    pretrained_->train();
    pretrained_->forward(torch::rand({8, 1, 16, 16}));  // non-trivial batch-norm statistics
    pretrained_->eval();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  TransferResult transfer(const std::string& mode) {
    TransferInputs in;
    in.mode = mode;
    in.options = &options_;
    in.model = model_.get();
    in.loss = loss_.get();
    in.pretrained = pretrained_.get();
    in.stages = &stages_;
    in.train = &train_;
    in.split = &split_;
    in.validation = &validation_;
    in.compute.channels_last = false;
    in.classes = 4;
    artefacts::RunDirectory dir(dir_ / mode);
    std::ostringstream log;
    Progress progress(log, false);
    return run_transfer(in, dir, progress);
  }

  static bool same_state(const torch::nn::Module& a, const torch::nn::Module& b) {
    auto equal_dicts = [](const auto& x, const auto& y) {
      for (const auto& item : x)
        if (!torch::equal(item.value(), y[item.key()])) return false;
      return true;
    };
    return equal_dicts(a.named_parameters(), b.named_parameters()) &&
           equal_dicts(a.named_buffers(), b.named_buffers());
  }

  std::filesystem::path dir_;
  data::ImageSet train_;
  data::Split split_;
  LabelledTensors validation_;
  PluginHost host_;
  std::unique_ptr<config::Document> document_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<Loss> loss_;
  std::shared_ptr<Backbone> pretrained_;
  std::vector<std::shared_ptr<const Stage>> stages_;
  RunOptions options_;
};

TEST_F(TransferModes, FixedLeavesWeightsAndBatchNormStatisticsUntouched) {
  const auto result = transfer("fixed");
  EXPECT_TRUE(same_state(*pretrained_, *result.backbone));
  EXPECT_GE(result.val_accuracy, 0.0);
}

TEST_F(TransferModes, FinetunedStartsFromThePretextWeightsAndMovesThem) {
  const auto result = transfer("finetuned");
  EXPECT_FALSE(same_state(*pretrained_, *result.backbone));
}

TEST_F(TransferModes, FrozenEpochsKeepTheBackboneUntilTheyEnd) {
  options_.transfer.frozen_epochs = 2;  // all of them
  EXPECT_TRUE(same_state(*pretrained_, *transfer("finetuned").backbone));
  options_.transfer.frozen_epochs = 1;
  EXPECT_FALSE(same_state(*pretrained_, *transfer("finetuned").backbone));
}

TEST_F(TransferModes, ScratchDoesNotUseThePretextWeights) {
  const auto result = transfer("scratch");
  const auto trained = result.backbone->named_parameters();
  // Initialised afresh: the first conv differs from the pretext one from the start.
  EXPECT_FALSE(torch::equal(trained["conv1.weight"], pretrained_->named_parameters()["conv1.weight"]));
}

}  // namespace
}  // namespace pretext
