// pretext "gan": a DCGAN whose discriminator's features are transferred.
//
// The discriminator is the configured model's backbone plus a one-logit head,
// so `transfer` receives exactly the network a rotation task would give it.
// The generator maps z ~ N(0, I) through transposed conv + batch norm + ReLU
// to an image of the data's size and channels, with a tanh output in [-1, 1];
// the discriminator sees images in [0, 1], as the transfer phase will, so
// generated images are mapped by (g + 1) / 2 before it sees them.
//
// One training step: `d_steps` discriminator updates on the real batch and a
// generated batch (real targets `real_label`, one-sided smoothing), then one
// generator update with the non-saturating loss -log D(G(z)), both through
// the bce_with_logits loss plugin (whatever [pretext.loss] says: the loss is
// part of what a GAN is). Two Adam optimisers with the DCGAN defaults
// (lr 2e-4, beta1 0.5).
#include <cmath>
#include <string>
#include <vector>

#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/adam.h>

#include "pretext/sdk.hpp"

namespace {

struct GanOptions {
  std::int64_t latent_dim = 100;
  std::int64_t generator_width = 64;
  double generator_lr = 2e-4;
  double discriminator_lr = 2e-4;
  double beta1 = 0.5;
  double real_label = 0.9;
  std::int64_t d_steps = 1;

  explicit GanOptions(pretext::Options& o) {
    latent_dim = o.integer("latent_dim", latent_dim, 1, 4096, "dimension of the generator's input z");
    generator_width = o.integer("generator_width", generator_width, 1, 4096, "filters in the generator's last layer");
    generator_lr = o.number("generator_lr", generator_lr, 1e-8, 1.0, "Adam learning rate of the generator");
    discriminator_lr =
        o.number("discriminator_lr", discriminator_lr, 1e-8, 1.0, "Adam learning rate of the discriminator");
    beta1 = o.number("beta1", beta1, 0.0, 0.999, "Adam beta1 of both optimisers (DCGAN: 0.5)");
    real_label = o.number("real_label", real_label, 0.5, 1.0, "target for real images; below 1 is one-sided smoothing");
    d_steps = o.integer("d_steps", d_steps, 1, 100, "discriminator updates per generator update");
  }
};

/// DCGAN generator: z (N, latent) -> (N, C, S, S) in [-1, 1], S = 4 * 2^k.
class Generator final : public torch::nn::Module {
 public:
  Generator(const GanOptions& options, const pretext::ImageShape& image) : latent_(options.latent_dim) {
    if (image.height != image.width || image.height < 8 || (image.height & (image.height - 1)) != 0)
      throw std::invalid_argument("gan: images must be square with a power-of-two size of at least 8, got " +
                                  std::to_string(image.height) + "x" + std::to_string(image.width));
    const int upsamplings = static_cast<int>(std::log2(image.height / 4));
    std::int64_t channels = options.generator_width << (upsamplings - 1);
    namespace nn = torch::nn;
    layers_->push_back(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(latent_, channels, 4).bias(false)));
    layers_->push_back(nn::BatchNorm2d(channels));
    layers_->push_back(nn::Functional(torch::relu));
    for (int i = 1; i < upsamplings; ++i) {
      layers_->push_back(
          nn::ConvTranspose2d(nn::ConvTranspose2dOptions(channels, channels / 2, 4).stride(2).padding(1).bias(false)));
      layers_->push_back(nn::BatchNorm2d(channels / 2));
      layers_->push_back(nn::Functional(torch::relu));
      channels /= 2;
    }
    layers_->push_back(
        nn::ConvTranspose2d(nn::ConvTranspose2dOptions(channels, image.channels, 4).stride(2).padding(1).bias(false)));
    layers_->push_back(nn::Functional(torch::tanh));
    register_module("layers", layers_);
  }

  torch::Tensor forward(const torch::Tensor& z) { return layers_->forward(z.view({z.size(0), latent_, 1, 1})); }
  [[nodiscard]] std::int64_t latent_dim() const { return latent_; }

 private:
  std::int64_t latent_;
  torch::nn::Sequential layers_;
};

class Gan final : public pretext::PretextTask, public pretext::Sampler {
 public:
  explicit Gan(pretext::Options& options) : options_(options) {}

  // ---- flow graph: the images themselves, unlabelled --------------------------
  [[nodiscard]] int views_per_image() const override { return 1; }
  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& /*rng*/,
                  const pretext::ViewSlots& views) const override {
    pretext::copy_image(image, views.view(0));
    views.set_label(0, 0);
  }

  // ---- training ----------------------------------------------------------------
  void setup(pretext::TrainingContext& context) override {
    context_ = &context;
    backbone_ = context.make_backbone();
    head_ = context.make_head(backbone_->feature_shape(), 1);
    loss_ = context.make_named_loss("bce_with_logits");
    generator_ = std::make_shared<Generator>(options_, context.input().image);
    generator_->to(context.device());
    std::vector<torch::Tensor> d_parameters = backbone_->parameters();
    for (auto& p : head_->parameters()) d_parameters.push_back(p);
    const auto betas = std::make_tuple(options_.beta1, 0.999);
    d_optimizer_ = std::make_unique<torch::optim::Adam>(
        d_parameters, torch::optim::AdamOptions(options_.discriminator_lr).betas(betas));
    g_optimizer_ = std::make_unique<torch::optim::Adam>(
        generator_->parameters(), torch::optim::AdamOptions(options_.generator_lr).betas(betas));
  }

  pretext::StepResult train_step(const torch::Tensor& images, const torch::Tensor& /*labels*/) override {
    backbone_->train();
    head_->train();
    generator_->train();
    const std::int64_t n = images.size(0);
    const auto tensor_options = torch::TensorOptions().device(images.device());
    const auto real_target = torch::full({n, 1}, options_.real_label, tensor_options);
    const auto fake_target = torch::zeros({n, 1}, tensor_options);
    const auto ones = torch::ones({n, 1}, tensor_options);

    double d_loss = 0.0;
    double d_real = 0.0;
    double d_fake = 0.0;
    for (std::int64_t s = 0; s < options_.d_steps; ++s) {
      torch::Tensor fake;
      {
        torch::NoGradGuard no_grad;
        fake = generate(n, images.device());
      }
      const auto real_logits = discriminate(images);
      const auto fake_logits = discriminate(fake);
      const auto loss = (*loss_)(real_logits, real_target) + (*loss_)(fake_logits, fake_target);
      d_optimizer_->zero_grad();
      loss.backward();
      // Its own optimisers, so its own check: a NaN gradient is skipped and the host stops the run.
      const bool d_finite =
          context_->gradients_finite(*backbone_, "backbone") && context_->gradients_finite(*head_, "head");
      if (d_finite) d_optimizer_->step();
      d_loss = loss.item<double>();
      d_real = torch::sigmoid(real_logits).mean().item<double>();
      d_fake = torch::sigmoid(fake_logits).mean().item<double>();
    }

    // Non-saturating generator loss: make D call the fakes real.
    const auto g_logits = discriminate(generate(n, images.device()));
    const auto g_loss = (*loss_)(g_logits, ones);
    g_optimizer_->zero_grad();
    g_loss.backward();
    if (context_->gradients_finite(*generator_, "generator")) g_optimizer_->step();

    pretext::StepResult result;
    result.loss = d_loss + g_loss.item<double>();
    result.count = n;
    result.extra = {{"d_loss", d_loss}, {"g_loss", g_loss.item<double>()}, {"d_real", d_real}, {"d_fake", d_fake}};
    return result;
  }

  [[nodiscard]] std::shared_ptr<pretext::Backbone> backbone() const override { return backbone_; }

  torch::Tensor sample(std::int64_t count) override {
    torch::NoGradGuard no_grad;
    generator_->eval();
    auto images = generate(count, context_->device());
    generator_->train();
    return images;
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    pretext::save_sub_archives(archive, {{"backbone", *backbone_},
                                         {"head", *head_},
                                         {"generator", *generator_},
                                         {"d_optimizer", *d_optimizer_},
                                         {"g_optimizer", *g_optimizer_}});
  }

  void load(torch::serialize::InputArchive& archive) override {
    pretext::load_sub_archives(archive, {{"backbone", *backbone_},
                                         {"head", *head_},
                                         {"generator", *generator_},
                                         {"d_optimizer", *d_optimizer_},
                                         {"g_optimizer", *g_optimizer_}});
  }

 private:
  /// Generated images mapped from the generator's [-1, 1] to the data's [0, 1].
  torch::Tensor generate(std::int64_t n, const torch::Device& device) {
    const auto z = torch::randn({n, options_.latent_dim}, torch::TensorOptions().device(device));
    return context_->autocast([&] { return generator_->forward(z); }).add(1.0).mul(0.5);
  }
  torch::Tensor discriminate(const torch::Tensor& images) {
    return context_->autocast([&] { return head_->forward(backbone_->forward(images)); });
  }

  GanOptions options_;
  pretext::TrainingContext* context_ = nullptr;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::shared_ptr<pretext::Loss> loss_;
  std::shared_ptr<Generator> generator_;
  std::unique_ptr<torch::optim::Optimizer> d_optimizer_;
  std::unique_ptr<torch::optim::Optimizer> g_optimizer_;
};

void register_gan(pretext::Registrar& registrar) {
  registrar.add_pretext("gan", [](pretext::Options& options) { return std::make_shared<Gan>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_gan)
