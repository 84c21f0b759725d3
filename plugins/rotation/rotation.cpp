// pretext "rotation" (RotNet): predict by how many quarter turns an image
// was rotated, labels 0..3 for 0/90/180/270 degrees counter-clockwise.
//   rotations = "all"    every image in all four rotations (RotNet's choice)
//   rotations = "random" one rotation per image, drawn from its own stream
#include <string>
#include <vector>

#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include "pretext/sdk.hpp"
#include "pretext/image_ops.hpp"

namespace {

class Rotation final : public pretext::PretextTask {
 public:
  explicit Rotation(pretext::Options& options)
      : all_(options.choice("rotations", "all", {"all", "random"},
                            "all: four labelled views per image; random: one random view") == "all") {}

  // ---- flow graph ------------------------------------------------------------
  [[nodiscard]] int views_per_image() const override { return all_ ? 4 : 1; }

  [[nodiscard]] pretext::ImageShape view_shape(const pretext::ImageShape& input) const override {
    if (input.height != input.width)
      throw std::invalid_argument("rotation: images must be square, got " + std::to_string(input.height) + "x" +
                                  std::to_string(input.width));
    return input;
  }

  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& rng,
                  const pretext::ViewSlots& views) const override {
    if (all_) {
      for (int k = 0; k < 4; ++k) {
        pretext::ops::rotate90(image, views.view(k), k);
        views.set_label(k, k);
      }
    } else {
      const int k = static_cast<int>(rng.below(4));
      pretext::ops::rotate90(image, views.view(0), k);
      views.set_label(0, k);
    }
  }

  // ---- training ----------------------------------------------------------------
  void setup(pretext::TrainingContext& context) override {
    context_ = &context;
    backbone_ = context.make_backbone();
    head_ = context.make_head(backbone_->feature_shape(), 4);
    loss_ = context.make_loss();
    std::vector<torch::Tensor> parameters = backbone_->parameters();
    for (auto& p : head_->parameters()) parameters.push_back(p);
    optimizer_ = context.make_optimizer(parameters);
  }

  pretext::StepResult train_step(const torch::Tensor& images, const torch::Tensor& labels) override {
    backbone_->train();
    head_->train();
    const torch::Tensor logits = context_->autocast([&] { return head_->forward(backbone_->forward(images)); });
    const torch::Tensor loss = (*loss_)(logits, labels);
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    pretext::StepResult result;
    result.loss = loss.item<double>();
    result.correct = logits.argmax(1).eq(labels).sum().item<std::int64_t>();
    result.count = images.size(0);
    return result;
  }

  [[nodiscard]] std::shared_ptr<pretext::Backbone> backbone() const override { return backbone_; }

  void save(torch::serialize::OutputArchive& archive) const override {
    pretext::save_sub_archives(archive, {{"backbone", *backbone_}, {"head", *head_}, {"optimizer", *optimizer_}});
  }

  void load(torch::serialize::InputArchive& archive) override {
    pretext::load_sub_archives(archive, {{"backbone", *backbone_}, {"head", *head_}, {"optimizer", *optimizer_}});
  }

 private:
  bool all_;
  pretext::TrainingContext* context_ = nullptr;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::shared_ptr<pretext::Loss> loss_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

void register_rotation(pretext::Registrar& registrar) {
  registrar.add_pretext("rotation", [](pretext::Options& options) { return std::make_shared<Rotation>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_rotation)
