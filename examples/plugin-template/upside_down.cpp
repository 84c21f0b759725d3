// A minimal pretext task: is the image upside down?
//
// Every unlabelled image becomes two views: as it is (label 0) and turned by
// 180 degrees (label 1). A network that tells them apart has to learn which
// way up things are, which is the same idea as RotNet with two classes.
//
// The lifecycle, in the order the host calls it:
//   constructor(options)   reads this task's keys from [pretext]
//   view_shape             once per epoch graph, with the data's image shape
//   make_views             on TBB workers, concurrently: must not write shared state
//   setup(context)         once: build networks, loss, optimiser through the context
//   train_step             once per batch, on one thread
//   save / load            checkpoints (pretext.pt)
//   backbone()             the features the host transfers to the labelled task
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pretext/image_ops.hpp"
#include "pretext/sdk.hpp"

namespace {

class UpsideDown final : public pretext::PretextTask {
 public:
  explicit UpsideDown(pretext::Options& options)
      : both_(options.boolean("both_views", true,
                              "true: each image as it is and upside down; false: one of the two at random")) {}

  // ---- flow graph: concurrent, const ------------------------------------
  [[nodiscard]] int views_per_image() const override { return both_ ? 2 : 1; }

  [[nodiscard]] pretext::ImageShape view_shape(const pretext::ImageShape& input) const override {
    if (input.height != input.width)
      throw std::invalid_argument("upside_down: images must be square (rotate90 needs it), got " +
                                  std::to_string(input.height) + "x" + std::to_string(input.width));
    return input;
  }

  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& rng,
                  pretext::ImageView* views, std::int64_t* labels) const override {
    if (both_) {
      pretext::ops::rotate90(image, views[0], 0);
      pretext::ops::rotate90(image, views[1], 2);
      labels[0] = 0;
      labels[1] = 1;
      return;
    }
    const int flipped = static_cast<int>(rng.below(2));  // rng is this image's own stream
    pretext::ops::rotate90(image, views[0], 2 * flipped);
    labels[0] = flipped;
  }

  // ---- training: one thread ----------------------------------------------
  void setup(pretext::TrainingContext& context) override {
    context_ = &context;
    backbone_ = context.make_backbone();
    head_ = context.make_head(backbone_->feature_shape(), 2);
    loss_ = context.make_loss();
    std::vector<torch::Tensor> parameters = backbone_->parameters();
    for (const auto& p : head_->parameters()) parameters.push_back(p);
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
    // One sub-archive per part, by name; load() reads the same names.
    pretext::save_sub_archives(archive, {{"backbone", *backbone_}, {"head", *head_}, {"optimizer", *optimizer_}});
  }

  void load(torch::serialize::InputArchive& archive) override {
    pretext::load_sub_archives(archive, {{"backbone", *backbone_}, {"head", *head_}, {"optimizer", *optimizer_}});
  }

 private:
  bool both_;
  pretext::TrainingContext* context_ = nullptr;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::shared_ptr<pretext::Loss> loss_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

// Explicit registration: the host calls this once, after checking the ABI
// descriptor. Nothing is registered by static initialisers.
void register_components(pretext::Registrar& registrar) {
  registrar.add_pretext("upside_down",
                        [](pretext::Options& options) { return std::make_shared<UpsideDown>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_components)
