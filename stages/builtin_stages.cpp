#include "stages/builtin_stages.hpp"

#include <algorithm>
#include <vector>

#include "pretext/image_ops.hpp"
#include "stages/rand_augment.hpp"

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

/// FixMatch's weak view: a random translation by up to `max_shift` pixels
/// each way, the border reflected (torchvision RandomCrop(size, padding,
/// padding_mode="reflect") on an image of that size).
class RandomTranslateStage final : public Stage {
 public:
  explicit RandomTranslateStage(Options& options)
      : max_shift_(static_cast<int>(
            options.integer("max_shift", 4, 0, 1024, "largest shift in pixels, each axis; the border is reflected"))) {}
  void apply(ImageView image, SampleRng& rng) const override {
    const int span = 2 * max_shift_ + 1;
    const int dy = static_cast<int>(rng.below(static_cast<std::uint64_t>(span))) - max_shift_;
    const int dx = static_cast<int>(rng.below(static_cast<std::uint64_t>(span))) - max_shift_;
    if (dx == 0 && dy == 0) return;
    const int h = image.shape.height;
    const int w = image.shape.width;
    thread_local std::vector<float> plane;
    plane.resize(image.shape.plane_size());
    for (int c = 0; c < image.shape.channels; ++c) {
      float* pixels = image.plane(c);
      std::copy(pixels, pixels + plane.size(), plane.begin());
      for (int y = 0; y < h; ++y) {
        const int sy = reflect(y - dy, h);
        for (int x = 0; x < w; ++x) pixels[y * w + x] = plane[static_cast<std::size_t>(sy * w + reflect(x - dx, w))];
      }
    }
  }

  /// Index `i` mirrored into [0, n) without repeating the edge (numpy's "reflect").
  static int reflect(int i, int n) {
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
  }

 private:
  int max_shift_;
};

template <typename T>
StageMaker maker() {
  return [](Options& options) -> std::shared_ptr<Stage> { return std::make_shared<T>(options); };
}

}  // namespace

std::vector<std::pair<std::string, StageMaker>> builtin_stages() {
  return {{"color_jitter", maker<ColorJitterStage>()},
          {"horizontal_flip", maker<HorizontalFlipStage>()},
          {"random_translate", maker<RandomTranslateStage>()},
          {"rand_augment", maker<RandAugmentStage>()}};
}

}  // namespace pretext::stages
