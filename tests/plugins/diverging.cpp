// pretext "diverging": trains a real backbone like a one-view task, and after
// `nan_after_steps` steps reports a NaN loss, as a diverging GAN would.
#include <limits>

#include "pretext/sdk.hpp"

namespace {

class Diverging final : public pretext::PretextTask {
 public:
  explicit Diverging(pretext::Options& options)
      : nan_after_(options.integer("nan_after_steps", 10, 0, 1 << 30, "steps before the loss becomes NaN")) {}

  [[nodiscard]] int views_per_image() const override { return 1; }
  void make_views(pretext::ConstImageView image, std::int64_t, pretext::SampleRng&,
                  const pretext::ViewSlots& views) const override {
    pretext::copy_image(image, views.view(0));
    views.set_label(0, 0);
  }
  void setup(pretext::TrainingContext& context) override {
    backbone_ = context.make_backbone();
    head_ = context.make_head(backbone_->feature_shape(), 2);
    optimizer_ = context.make_optimizer(backbone_->parameters());
  }
  pretext::StepResult train_step(const torch::Tensor& images, const torch::Tensor& labels) override {
    const auto loss = torch::nn::functional::cross_entropy(head_->forward(backbone_->forward(images)), labels);
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    pretext::StepResult result;
    result.loss = ++steps_ > nan_after_ ? std::numeric_limits<double>::quiet_NaN() : loss.item<double>();
    result.count = images.size(0);
    return result;
  }
  [[nodiscard]] std::shared_ptr<pretext::Backbone> backbone() const override { return backbone_; }
  void save(torch::serialize::OutputArchive& archive) const override {
    torch::serialize::OutputArchive backbone;
    backbone_->save(backbone);
    archive.write("backbone", backbone);
    archive.write("steps", torch::tensor(steps_));
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive backbone;
    archive.read("backbone", backbone);
    backbone_->load(backbone);
  }

 private:
  std::int64_t nan_after_;
  std::int64_t steps_ = 0;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

void register_diverging(pretext::Registrar& registrar) {
  registrar.add_pretext("diverging", [](pretext::Options& options) { return std::make_shared<Diverging>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_diverging)
