// pretext "view_breaches": a one- or two-view task that breaks the view
// contract as its `breach` option says, to test that the host catches each
// breach with a message (view_contract_test):
//   none         two views, both written and labelled (the control);
//   too_few      writes view 0 only;
//   too_many     asks for a third view;
//   wrong_shape  declares half-height views and writes whole images into them,
//                through the raw pointer as a careless task would;
//   no_label     writes both views, labels one;
//   load_skips_head  views are fine, but load() restores the backbone and
//                the optimiser and forgets the head (check_plugin_test);
// Its training step is a real one-backbone step, so a run that gets past the
// views trains.
#include <algorithm>
#include <memory>
#include <vector>

#include "pretext/sdk.hpp"

namespace {

class ViewBreaches final : public pretext::PretextTask {
 public:
  explicit ViewBreaches(pretext::Options& options)
      : breach_(options.choice("breach", "none", {"none", "too_few", "too_many", "wrong_shape", "no_label", "load_skips_head"},
                               "which rule of the view contract to break")) {}

  [[nodiscard]] int views_per_image() const override { return 2; }

  [[nodiscard]] pretext::ImageShape view_shape(const pretext::ImageShape& input) const override {
    if (breach_ != "wrong_shape") return input;
    return {input.channels, input.height / 2, input.width};
  }

  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& /*rng*/,
                  const pretext::ViewSlots& views) const override {
    if (breach_ == "wrong_shape") {
      for (int v = 0; v < 2; ++v) std::copy_n(image.data, image.shape.numel(), views.view(v).data);
    } else {
      pretext::copy_image(image, views.view(0));
      if (breach_ != "too_few") pretext::copy_image(image, views.view(1));
      if (breach_ == "too_many") pretext::copy_image(image, views.view(2));
    }
    views.set_label(0, 0);
    if (breach_ != "no_label") views.set_label(1, 1);
  }

  void setup(pretext::TrainingContext& context) override {
    backbone_ = context.make_backbone();
    head_ = context.make_head(backbone_->feature_shape(), 2);
    loss_ = context.make_loss();
    std::vector<torch::Tensor> parameters = backbone_->parameters();
    for (const auto& p : head_->parameters()) parameters.push_back(p);
    optimizer_ = context.make_optimizer(parameters);
  }

  pretext::StepResult train_step(const torch::Tensor& images, const torch::Tensor& labels) override {
    const torch::Tensor loss = (*loss_)(head_->forward(backbone_->forward(images)), labels);
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    pretext::StepResult result;
    result.loss = loss.item<double>();
    result.count = images.size(0);
    return result;
  }

  [[nodiscard]] std::shared_ptr<pretext::Backbone> backbone() const override { return backbone_; }
  void save(torch::serialize::OutputArchive& archive) const override {
    pretext::save_sub_archives(archive, {{"backbone", *backbone_}, {"head", *head_}, {"optimizer", *optimizer_}});
  }
  void load(torch::serialize::InputArchive& archive) override {
    if (breach_ == "load_skips_head") {
      pretext::load_sub_archives(archive, {{"backbone", *backbone_}, {"optimizer", *optimizer_}});
      return;
    }
    pretext::load_sub_archives(archive, {{"backbone", *backbone_}, {"head", *head_}, {"optimizer", *optimizer_}});
  }

 private:
  std::string breach_;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::shared_ptr<pretext::Loss> loss_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

void register_components(pretext::Registrar& registrar) {
  registrar.add_pretext("view_breaches",
                        [](pretext::Options& options) { return std::make_shared<ViewBreaches>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_components)
