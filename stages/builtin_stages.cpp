#include "stages/builtin_stages.hpp"

#include "pretext/image_ops.hpp"

namespace pretext::stages {
namespace {

class ColorJitterStage final : public Stage {
 public:
  explicit ColorJitterStage(Options& options) {
    params_.brightness = options.number("brightness", 0.2, 0.0, 1.0, "brightness factor range [1-x, 1+x]");
    params_.contrast = options.number("contrast", 0.4, 0.0, 1.0, "contrast factor range [1-x, 1+x]");
    params_.saturation =
        options.number("saturation", 0.5, 0.0, 1.0, "saturation factor range [1-x, 1+x]; no-op on grey");
  }
  void apply(ImageView image, SampleRng& rng) const override { ops::color_jitter(image, params_, rng); }

 private:
  ops::ColorJitterParams params_;
};

class HorizontalFlipStage final : public Stage {
 public:
  explicit HorizontalFlipStage(Options& options)
      : probability_(options.number("probability", 0.5, 0.0, 1.0, "chance of mirroring an image")) {}
  void apply(ImageView image, SampleRng& rng) const override {
    if (rng.uniform() < probability_) ops::flip_horizontal(image);
  }

 private:
  double probability_;
};

template <typename T>
StageMaker maker() {
  return [](Options& options) -> std::shared_ptr<Stage> { return std::make_shared<T>(options); };
}

}  // namespace

std::vector<std::pair<std::string, StageMaker>> builtin_stages() {
  return {{"color_jitter", maker<ColorJitterStage>()},
          {"horizontal_flip", maker<HorizontalFlipStage>()}};
}

}  // namespace pretext::stages
