// pretext "simclr" (Chen et al. 2020): two augmented views of every image,
// and a network that learns to tell which views come from the same image.
//
// make_views writes two views per image (labels 0 and 1: the view index),
// each an independent random resized crop back to the input size and a
// random horizontal flip. Colour augmentation is not done here: it comes
// from the configured pretext.stages, which the host applies to each view
// with its own random stream.
//
// The host's batcher keeps samples in order, so with an even
// pretext.batch_size the two views of an image sit next to each other
// (labels 0, 1, 0, 1, ...): train_step checks that and gives the pair k the
// id k. The loss ([pretext.loss], normally "nt_xent") sees the projection
// head's output; the backbone before the head is what is transferred.
#include <limits>
#include <string>
#include <vector>

#include <torch/nn/functional/normalization.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>

#include "pretext/image_ops.hpp"
#include "pretext/sdk.hpp"

namespace {

struct SimclrOptions {
  double min_scale = 0.2;  // torchvision's default is 0.08; 0.2 keeps a 28x28 garment recognisable
  double max_scale = 1.0;
  double min_ratio = 3.0 / 4.0;
  double max_ratio = 4.0 / 3.0;
  double flip = 0.5;
  std::int64_t hidden_dim = 256;
  std::int64_t projection_dim = 128;

  explicit SimclrOptions(pretext::Options& o) {
    min_scale = o.number("min_scale", min_scale, 1e-3, 1.0, "smallest crop, as a fraction of the image's area");
    max_scale = o.number("max_scale", max_scale, 1e-3, 1.0, "largest crop, as a fraction of the image's area");
    if (max_scale < min_scale) o.fail("max_scale", "a value at least min_scale (" + std::to_string(min_scale) + ")");
    min_ratio = o.number("min_ratio", min_ratio, 0.1, 10.0, "smallest crop aspect ratio (width / height)");
    max_ratio = o.number("max_ratio", max_ratio, 0.1, 10.0, "largest crop aspect ratio (width / height)");
    if (max_ratio < min_ratio) o.fail("max_ratio", "a value at least min_ratio (" + std::to_string(min_ratio) + ")");
    flip = o.number("flip", flip, 0.0, 1.0, "chance of mirroring each view left-right");
    hidden_dim = o.integer("hidden_dim", hidden_dim, 1, 1 << 16, "width of the projection head's hidden layer");
    projection_dim =
        o.integer("projection_dim", projection_dim, 1, 1 << 16, "dimension of the embeddings the loss compares");
  }
};

class Simclr final : public pretext::PretextTask {
 public:
  explicit Simclr(pretext::Options& options) : options_(options) {}

  // ---- flow graph ------------------------------------------------------------
  [[nodiscard]] int views_per_image() const override { return 2; }

  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& rng,
                  const pretext::ViewSlots& views) const override {
    for (int v = 0; v < views.size(); ++v) {
      const auto box = pretext::ops::random_resized_crop_box(image.shape, options_.min_scale, options_.max_scale,
                                                             options_.min_ratio, options_.max_ratio, rng);
      pretext::ops::resized_crop(image, box, views.view(v));
      if (rng.uniform() < options_.flip) pretext::ops::flip_horizontal(views.view(v));
      views.set_label(v, v);
    }
  }

  // ---- training ----------------------------------------------------------------
  void setup(pretext::TrainingContext& context) override {
    context_ = &context;
    backbone_ = context.make_backbone();
    const auto features = backbone_->feature_shape();
    const std::int64_t flat = features.channels * features.height * features.width;
    namespace nn = torch::nn;
    projection_ =
        nn::Sequential(nn::Flatten(), nn::Linear(flat, options_.hidden_dim), nn::BatchNorm1d(options_.hidden_dim),
                       nn::ReLU(), nn::Linear(options_.hidden_dim, options_.projection_dim));
    projection_->to(context.device());
    loss_ = context.make_loss();
    std::vector<torch::Tensor> parameters = backbone_->parameters();
    for (auto& p : projection_->parameters()) parameters.push_back(p);
    optimizer_ = context.make_optimizer(parameters);
  }

  pretext::StepResult train_step(const torch::Tensor& images, const torch::Tensor& labels) override {
    check_pairs(labels);
    const std::int64_t n = images.size(0);
    const auto pair_ids =
        torch::arange(n / 2, torch::TensorOptions().dtype(torch::kLong).device(images.device())).repeat_interleave(2);
    backbone_->train();
    projection_->train();
    const torch::Tensor embeddings =
        context_->autocast([&] { return projection_->forward(backbone_->forward(images)); });
    const torch::Tensor loss = (*loss_)(embeddings, pair_ids);
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    pretext::StepResult result;
    result.loss = loss.item<double>();
    result.correct = partners_found(embeddings.detach());
    result.count = n;
    return result;
  }

  [[nodiscard]] std::shared_ptr<pretext::Backbone> backbone() const override { return backbone_; }

  void save(torch::serialize::OutputArchive& archive) const override {
    pretext::save_sub_archives(archive,
                               {{"backbone", *backbone_}, {"projection", *projection_}, {"optimizer", *optimizer_}});
  }

  void load(torch::serialize::InputArchive& archive) override {
    pretext::load_sub_archives(archive,
                               {{"backbone", *backbone_}, {"projection", *projection_}, {"optimizer", *optimizer_}});
  }

 private:
  /// The batch must be whole pairs in order: labels 0, 1, 0, 1, ...
  static void check_pairs(const torch::Tensor& labels) {
    const std::int64_t n = labels.size(0);
    const auto expected = torch::arange(n, torch::TensorOptions().dtype(torch::kLong)).remainder(2);
    if (n < 2 || n % 2 != 0 || !torch::equal(labels.cpu().to(torch::kLong), expected))
      throw std::invalid_argument(
          "simclr: a batch must hold both views of each image next to each other (labels 0, 1, 0, 1, ...), got " +
          std::to_string(n) + " samples" + (n % 2 != 0 ? " (odd)" : " out of order") +
          "; pretext.batch_size must be even");
  }

  /// How many samples have their partner as their most similar other sample.
  static std::int64_t partners_found(const torch::Tensor& embeddings) {
    namespace F = torch::nn::functional;
    torch::NoGradGuard no_grad;
    const std::int64_t n = embeddings.size(0);
    const auto z = F::normalize(embeddings.to(torch::kFloat), F::NormalizeFuncOptions().dim(1));
    const auto similarity = z.matmul(z.t()).fill_diagonal_(-std::numeric_limits<float>::infinity());
    const auto partner = torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(z.device())).bitwise_xor(1);
    return similarity.argmax(1).eq(partner).sum().item<std::int64_t>();
  }

  SimclrOptions options_;
  pretext::TrainingContext* context_ = nullptr;
  std::shared_ptr<pretext::Backbone> backbone_;
  torch::nn::Sequential projection_{nullptr};
  std::shared_ptr<pretext::Loss> loss_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

void register_simclr(pretext::Registrar& registrar) {
  registrar.add_pretext("simclr", [](pretext::Options& options) { return std::make_shared<Simclr>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_simclr)
