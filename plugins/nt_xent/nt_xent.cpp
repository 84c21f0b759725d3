// loss "nt_xent": SimCLR's normalised temperature-scaled cross-entropy.
//
// embeddings (M, D): one row per view; targets (M) int64: an id per row, and
// each id on exactly two rows, the positive pair. Rows are L2-normalised,
// every row is compared with every other by cosine similarity / temperature,
// and each row's cross-entropy picks its partner out of the other M - 1 rows
// (its own similarity is excluded). The mean over all M rows is returned, so
// both directions of every pair count, as in SimCLR.
//
// Computed in float32 whatever the input type: bf16's 8-bit mantissa would
// blur similarities that differ by less than 1 %, and exp() of values up to
// 1 / temperature is where low precision hurts.
#include <limits>
#include <string>

#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>

#include "pretext/sdk.hpp"

namespace {

class NtXent final : public pretext::Loss {
 public:
  explicit NtXent(pretext::Options& options)
      : temperature_(options.number("temperature", 0.5, 1e-6, 10.0,
                                    "softmax temperature of the cosine similarities (SimCLR: 0.5 for CIFAR)")) {}

  torch::Tensor operator()(const torch::Tensor& embeddings, const torch::Tensor& targets) const override {
    namespace F = torch::nn::functional;
    validate(embeddings, targets);
    const std::int64_t m = embeddings.size(0);
    const auto z = F::normalize(embeddings.to(torch::kFloat), F::NormalizeFuncOptions().p(2).dim(1));
    const auto self = torch::eye(m, torch::TensorOptions().dtype(torch::kBool).device(z.device()));
    const auto logits = z.matmul(z.t()).div(temperature_).masked_fill(self, -std::numeric_limits<float>::infinity());
    return F::cross_entropy(logits, partners(targets.to(z.device())));
  }

 private:
  /// For each row, the index of the other row with the same id.
  static torch::Tensor partners(const torch::Tensor& ids) {
    const auto same = ids.unsqueeze(1).eq(ids.unsqueeze(0));
    same.fill_diagonal_(false);
    return same.to(torch::kLong).argmax(1);
  }

  static void validate(const torch::Tensor& embeddings, const torch::Tensor& targets) {
    if (embeddings.dim() != 2 || embeddings.size(0) < 2)
      throw std::invalid_argument("nt_xent: embeddings must be (M, D) with M >= 2 rows, got shape " +
                                  shape_of(embeddings));
    if (targets.dim() != 1 || targets.scalar_type() != torch::kLong || targets.size(0) != embeddings.size(0))
      throw std::invalid_argument("nt_xent: targets must be a 1-D int64 tensor of one pair id per row (" +
                                  std::to_string(embeddings.size(0)) + "), got shape " + shape_of(targets) +
                                  " of type " + std::string(c10::toString(targets.scalar_type())));
    const auto ids = targets.cpu();
    const auto rows_with_id = ids.unsqueeze(1).eq(ids.unsqueeze(0)).sum(1);
    const auto unpaired = rows_with_id.ne(2).nonzero();
    if (unpaired.numel() > 0) {
      const std::int64_t row = unpaired[0][0].item<std::int64_t>();
      const std::string id = std::to_string(ids[row].item<std::int64_t>());
      const std::string count = std::to_string(rows_with_id[row].item<std::int64_t>());
      throw std::invalid_argument(
          "nt_xent: every id in targets must appear exactly twice (one positive pair), but id " + id + " at row " +
          std::to_string(row) + " appears " + count + " time(s)");
    }
  }

  static std::string shape_of(const torch::Tensor& t) {
    std::string s = "(";
    for (std::int64_t d = 0; d < t.dim(); ++d) s += (d > 0 ? ", " : "") + std::to_string(t.size(d));
    return s + ")";
  }

  double temperature_;
};

void register_nt_xent(pretext::Registrar& registrar) {
  registrar.add_loss("nt_xent", [](pretext::Options& options) { return std::make_shared<NtXent>(options); });
}

}  // namespace

PRETEXT_PLUGIN(register_nt_xent)
