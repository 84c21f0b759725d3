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
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "pretext/sdk.hpp"

namespace {

class UpsideDown final : public pretext::PretextTask {
 public:
  explicit UpsideDown(pretext::Options& options)
      : both_(options.boolean("both_views", true,
                              "true: each image as it is and upside down; false: one of the two at random")) {}

  // ---- flow graph: concurrent, const ------------------------------------
  [[nodiscard]] int views_per_image() const override { return both_ ? 2 : 1; }

  // view_shape is not overridden: each view has the image's shape (any, square or not).

  // `views` holds exactly views_per_image() views of view_shape(image.shape);
  // the host checks that each is written and labelled.
  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& rng,
                  const pretext::ViewSlots& views) const override {
    if (both_) {
      pretext::copy_image(image, views.view(0));
      turn_upside_down(image, views.view(1));
      views.set_label(0, 0);
      views.set_label(1, 1);
      return;
    }
    const bool flipped = rng.below(2) == 1;  // rng is this image's own stream
    if (flipped) {
      turn_upside_down(image, views.view(0));
    } else {
      pretext::copy_image(image, views.view(0));
    }
    views.set_label(0, flipped ? 1 : 0);
  }

  // A half turn: row y of the view is row H-1-y of the image, reversed.
  static void turn_upside_down(pretext::ConstImageView image, pretext::ImageView view) {
    const int height = image.shape.height;
    const int width = image.shape.width;
    for (int c = 0; c < image.shape.channels; ++c) {
      for (int y = 0; y < height; ++y) {
        const float* source = image.row(c, height - 1 - y);
        std::reverse_copy(source, source + width, view.row(c, y));
      }
    }
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
