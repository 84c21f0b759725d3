// Components that throw where their section's `fault` option says, after
// `fault_after` successful calls (plugin_faults_test). One library with one
// component of each kind, so a config names it by path for each of them:
//
//   stage   "faulty_stage":  fault = "constructor" | "apply"
//   pretext "faulty":        fault = "constructor" | "make_views" | "train_step"
//   model   "faulty_model":  fault = "constructor" | "make_backbone" | "forward"
//   loss    "faulty_loss":   fault = "constructor" | "call"
//
// `exception = "int"` throws an int instead of a std::runtime_error, as
// careless third-party code might; "torch" fails a TORCH_CHECK (a
// c10::Error, whose what() carries a backtrace). The pretext task trains a real backbone
// and head from the configured model, with the configured loss.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_components.hpp"

namespace {

/// Reads `fault`, `fault_after` and `exception`, and throws at the right call.
class Fault {
 public:
  Fault(pretext::Options& options, std::vector<std::string> places)
      : place_(options.choice("fault", "none", with_none(std::move(places)), "where this component throws")),
        after_(options.integer("fault_after", 0, 0, 1 << 30, "successful calls before the fault")),
        exception_(options.choice("exception", "runtime_error", {"runtime_error", "int", "torch"}, "what is thrown")) {
    maybe_throw("constructor");
  }

  /// Throws if `place` is the configured one and enough calls went by. Thread-safe.
  void maybe_throw(const std::string& place) const {
    if (place != place_) return;
    const std::int64_t call = calls_.fetch_add(1) + 1;
    if (call <= after_ && place != "constructor") return;
    if (exception_ == "int") throw 42;  // NOLINT(hicpp-exception-baseclass): the point of the test
    TORCH_CHECK(exception_ != "torch", "injected fault in ", place, " (call ", call, ")");
    throw std::runtime_error("injected fault in " + place + " (call " + std::to_string(call) + ")");
  }

 private:
  static std::vector<std::string> with_none(std::vector<std::string> places) {
    places.insert(places.begin(), "none");
    places.emplace_back("constructor");
    return places;
  }

  std::string place_;
  std::int64_t after_;
  std::string exception_;
  mutable std::atomic<std::int64_t> calls_{0};
};

class FaultyStage final : public pretext::Stage {
 public:
  explicit FaultyStage(pretext::Options& options) : fault_(options, {"apply"}) {}
  void apply(pretext::ImageView /*image*/, pretext::SampleRng& /*rng*/) const override { fault_.maybe_throw("apply"); }

 private:
  Fault fault_;
};

/// A pointwise backbone (a child module, as real networks have) that may throw in forward.
class FaultyBackbone final : public pretext::Backbone {
 public:
  FaultyBackbone(const pretext::ImageShape& image, const Fault& fault)
      : inner_(register_module("inner", std::make_shared<pretext_test::PointwiseBackbone>(image, 4))), fault_(fault) {}
  torch::Tensor forward(torch::Tensor images) override {
    fault_.maybe_throw("forward");
    return inner_->forward(std::move(images));
  }
  [[nodiscard]] pretext::FeatureShape feature_shape() const override { return inner_->feature_shape(); }

 private:
  std::shared_ptr<pretext_test::PointwiseBackbone> inner_;
  const Fault& fault_;  // the model's: models outlive their networks in the host
};

class FaultyModel final : public pretext::Model {
 public:
  explicit FaultyModel(pretext::Options& options) : fault_(options, {"make_backbone", "forward"}) {}
  [[nodiscard]] std::shared_ptr<pretext::Backbone> make_backbone(const pretext::ModelInput& input) const override {
    fault_.maybe_throw("make_backbone");
    return std::make_shared<FaultyBackbone>(input.image, fault_);
  }
  [[nodiscard]] std::shared_ptr<pretext::Head> make_head(const pretext::FeatureShape& features,
                                                         std::int64_t classes) const override {
    return std::make_shared<pretext_test::LinearHead>(features, classes);
  }

 private:
  Fault fault_;
};

class FaultyLoss final : public pretext::Loss {
 public:
  explicit FaultyLoss(pretext::Options& options) : fault_(options, {"call"}) {}
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets) const override {
    fault_.maybe_throw("call");
    return cross_entropy_(logits, targets);
  }

 private:
  Fault fault_;
  pretext_test::CrossEntropyLoss cross_entropy_;
};

/// One view per image, labelled by the parity of its first pixel's bucket.
class FaultyTask final : public pretext::PretextTask {
 public:
  explicit FaultyTask(pretext::Options& options) : fault_(options, {"make_views", "train_step"}) {}

  [[nodiscard]] int views_per_image() const override { return 1; }
  void make_views(pretext::ConstImageView image, std::int64_t /*source_label*/, pretext::SampleRng& /*rng*/,
                  const pretext::ViewSlots& views) const override {
    fault_.maybe_throw("make_views");
    pretext::copy_image(image, views.view(0));
    views.set_label(0, image.data[0] > 0.5F ? 1 : 0);
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
    fault_.maybe_throw("train_step");
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
    torch::serialize::OutputArchive backbone;
    backbone_->save(backbone);
    archive.write("backbone", backbone);
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive backbone;
    archive.read("backbone", backbone);
    backbone_->load(backbone);
  }

 private:
  Fault fault_;
  std::shared_ptr<pretext::Backbone> backbone_;
  std::shared_ptr<pretext::Head> head_;
  std::shared_ptr<pretext::Loss> loss_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

void register_faulty(pretext::Registrar& registrar) {
  registrar.add_stage("faulty_stage", [](pretext::Options& o) { return std::make_shared<FaultyStage>(o); });
  registrar.add_pretext("faulty", [](pretext::Options& o) { return std::make_shared<FaultyTask>(o); });
  registrar.add_model("faulty_model", [](pretext::Options& o) { return std::make_shared<FaultyModel>(o); });
  registrar.add_loss("faulty_loss", [](pretext::Options& o) { return std::make_shared<FaultyLoss>(o); });
}

}  // namespace

PRETEXT_PLUGIN(register_faulty)
