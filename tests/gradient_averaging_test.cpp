// pipeline/distributed: gradients averaged in flat buckets, and module state
// (broadcast, batch-norm statistics averaged) across ranks on loopback.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/errors.hpp"
#include "pipeline/distributed/gradient_buckets.hpp"
#include "pipeline/distributed/process_group.hpp"
#include "support/process_group_ranks.hpp"

namespace pretext::distributed {
namespace {

using testing::messages_of_ranks;
using testing::run_ranks;

// ------------------------------------------------------ gradient averaging

// The parameters each rank trains: the same shapes; the gradients differ.
std::vector<torch::Tensor> make_parameters() {
  return {torch::zeros({4, 3}, torch::requires_grad()), torch::zeros({4}, torch::requires_grad()),
          torch::zeros({2, 4}, torch::requires_grad()), torch::zeros({5}, torch::requires_grad()),
          torch::zeros({3}, torch::requires_grad())};
}

TEST(GradientAverager, GivesEveryRankTheMeanBitForBit) {
  // Both ranks' gradients, drawn here with a seed: rank r's are grads[r].
  torch::manual_seed(0);
  std::vector<std::vector<torch::Tensor>> grads(2);
  for (auto& rank_grads : grads)
    for (const auto& p : make_parameters()) rank_grads.push_back(torch::randn(p.sizes()));
  std::vector<std::vector<torch::Tensor>> results(2);
  run_ranks(2, [&](int rank, ProcessGroup& group) {
    auto parameters = make_parameters();
    for (std::size_t i = 0; i < 3; ++i) parameters[i].mutable_grad() = grads[rank][i].clone();
    // Parameter 3 has a gradient on rank 1 only (unused on rank 0's batch);
    // parameter 4 on neither: it must stay without one.
    if (rank == 1) parameters[3].mutable_grad() = grads[rank][3].clone();
    GradientAverager averager(parameters, /*bucket_bytes=*/64);  // 4x3 floats fill a bucket alone
    averager.average(group);
    for (const auto& p : parameters) results[rank].push_back(p.grad());
  });
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(results[0][i], results[1][i])) << "parameter " << i;
    EXPECT_TRUE(torch::equal(results[0][i], (grads[0][i] + grads[1][i]) / 2)) << "parameter " << i;
  }
  ASSERT_TRUE(results[0][3].defined());
  EXPECT_TRUE(torch::equal(results[0][3], grads[1][3] / 2));
  EXPECT_TRUE(torch::equal(results[1][3], grads[1][3] / 2));
  EXPECT_FALSE(results[0][4].defined());
  EXPECT_FALSE(results[1][4].defined());
}

TEST(GradientAverager, SplitsBucketsBySizeAndDtype) {
  auto parameters = make_parameters();  // 12, 4, 8, 5, 3 floats
  EXPECT_EQ(GradientAverager(parameters).buckets(), 1U);
  EXPECT_EQ(GradientAverager(parameters).bytes_per_step(), (32 + 5) * 4);   // gradients and one count each
  EXPECT_EQ(GradientAverager(parameters, 1).buckets(), parameters.size());  // each alone
  // 64 bytes: [12 + 4 floats], [8 + 5 + 3 floats].
  EXPECT_EQ(GradientAverager(parameters, 64).parameters_per_bucket(), (std::vector<std::size_t>{2, 3}));

  parameters.push_back(torch::zeros({2}, torch::TensorOptions().dtype(torch::kDouble).requires_grad(true)));
  parameters.push_back(torch::zeros({100}));  // frozen: no gradient to average
  EXPECT_EQ(GradientAverager(parameters).parameters_per_bucket(), (std::vector<std::size_t>{5, 1}));
}

TEST(GradientAverager, AveragesRepeatedlyReusingItsBuffers) {
  run_ranks(2, [](int rank, ProcessGroup& group) {
    auto parameters = make_parameters();
    GradientAverager averager(parameters, 48);
    for (int step = 0; step < 3; ++step) {
      for (auto& p : parameters) p.mutable_grad() = torch::full(p.sizes(), static_cast<float>(rank + step));
      averager.average(group);
      for (const auto& p : parameters) EXPECT_TRUE(torch::equal(p.grad(), torch::full(p.sizes(), step + 0.5F)));
    }
  });
}

// ------------------------------------------------------------ module state

torch::nn::Sequential small_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3)), torch::nn::BatchNorm2d(2),
                               torch::nn::Linear(4, 3));
}

TEST(ModuleState, BroadcastMakesDifferentlyInitialisedModulesEqual) {
  torch::manual_seed(0);
  auto net0 = small_net();
  torch::manual_seed(1);
  auto net1 = small_net();
  {
    const torch::NoGradGuard no_grad;
    net1->named_buffers()["1.running_mean"].fill_(5);
    net1->named_buffers()["1.num_batches_tracked"].fill_(9);
  }
  const auto before = net0->named_parameters()["0.weight"].clone();
  ASSERT_FALSE(torch::equal(before, net1->named_parameters()["0.weight"]));
  run_ranks(2, [&](int rank, ProcessGroup& group) { broadcast_module_state(rank == 0 ? *net0 : *net1, group); });
  EXPECT_TRUE(torch::equal(net0->named_parameters()["0.weight"], before));
  for (const auto& item : net0->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), net1->named_parameters()[item.key()])) << item.key();
  for (const auto& item : net0->named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), net1->named_buffers()[item.key()])) << item.key();
}

TEST(ModuleState, ADifferentModuleIsNamedBeforeAnythingIsSent) {
  auto net0 = small_net();
  auto net1 = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3)), torch::nn::BatchNorm2d(4),
                                    torch::nn::Linear(4, 3));
  const auto messages = messages_of_ranks(
      2, [&](int rank, ProcessGroup& group) { broadcast_module_state(rank == 0 ? *net0 : *net1, group); });
  for (const auto& message : messages) {
    EXPECT_NE(message.find("rank 1 has '0.weight Float [4,1,3,3,]'"), std::string::npos) << message;
    EXPECT_NE(message.find("rank 0 has '0.weight Float [2,1,3,3,]'"), std::string::npos) << message;
  }
}

TEST(ModuleState, AverageBuffersMeansStatisticsAndKeepsRank0sCounts) {
  std::vector<torch::nn::BatchNorm1d> nets{torch::nn::BatchNorm1d(3), torch::nn::BatchNorm1d(3)};
  {
    const torch::NoGradGuard no_grad;
    for (int r = 0; r < 2; ++r) {
      nets[r]->running_mean.fill_(1 + 2 * r);  // 1, 3
      nets[r]->running_var.fill_(2 + 2 * r);   // 2, 4
      nets[r]->num_batches_tracked.fill_(5 + 2 * r);
    }
  }
  run_ranks(2, [&](int rank, ProcessGroup& group) { average_buffers(*nets[rank], group); });
  for (const auto& net : nets) {
    EXPECT_TRUE(torch::equal(net->running_mean, torch::full({3}, 2.0F)));
    EXPECT_TRUE(torch::equal(net->running_var, torch::full({3}, 3.0F)));
    EXPECT_EQ(net->num_batches_tracked.item<std::int64_t>(), 5);
  }
}

}  // namespace
}  // namespace pretext::distributed
