// DataParallel, the trainer's side of data parallelism: two ranks as two
// threads of this process on loopback, each with its own DataParallel.
#include "pipeline/train/data_parallel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include <torch/torch.h>

#include "common/errors.hpp"
#include "pipeline/config/run_options.hpp"
#include "pipeline/distributed/local_launcher.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/trainer.hpp"
#include "support/loopback_ranks.hpp"

namespace pretext {
namespace {

// `body(rank, parallel)` on a thread per rank; rethrows the first failure.
void run_ranks(int world_size, const std::function<void(int, const std::shared_ptr<DataParallel>&)>& body) {
  const int port = distributed::pick_free_port();
  testing::on_rank_threads(world_size, [&](int rank) {
    const auto parallel = std::make_shared<DataParallel>(testing::loopback_environment(rank, world_size, port),
                                                         std::chrono::seconds(20), std::int64_t{1} << 20);
    body(rank, parallel);
  });
}

torch::nn::Sequential small_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)),
                               torch::nn::BatchNorm2d(4), torch::nn::ReLU(), torch::nn::Flatten(),
                               torch::nn::Linear(4 * 8 * 8, 5));
}

// Trains each rank's net (initialised differently per rank) for `steps` on
// its own data; with `synchronise`, through DataParallel as the job does.
std::vector<std::vector<torch::Tensor>> train_two_ranks(bool synchronise, int steps) {
  std::vector<std::vector<torch::Tensor>> parameters(2);
  run_ranks(2, [&](int rank, const std::shared_ptr<DataParallel>& parallel) {
    torch::manual_seed(100 + rank);  // different initial weights: the broadcast must fix them
    auto net = small_net();
    if (synchronise) parallel->broadcast(*net);
    OptimizerOptions options;
    options.lr = 0.01;
    auto optimizer = make_optimizer(options, net->parameters(), nullptr, synchronise ? parallel : nullptr);
    torch::manual_seed(7 + rank);  // each rank its own data
    for (int step = 0; step < steps; ++step) {
      const auto images = torch::randn({6, 3, 8, 8});
      const auto labels = torch::randint(0, 5, {6});
      optimizer->zero_grad();
      torch::nn::functional::cross_entropy(net->forward(images), labels).backward();
      optimizer->step();
    }
    if (synchronise) parallel->average_buffers(*net);
    for (const auto& p : net->parameters()) parameters[static_cast<std::size_t>(rank)].push_back(p.detach().clone());
    for (const auto& b : net->buffers()) parameters[static_cast<std::size_t>(rank)].push_back(b.detach().clone());
  });
  return parameters;
}

bool bit_identical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

TEST(DataParallel, AfterStepsOnDifferentDataTwoRanksHoldBitIdenticalWeights) {
  const auto synchronised = train_two_ranks(true, 5);
  EXPECT_TRUE(bit_identical(synchronised[0], synchronised[1]));
  // Without the broadcast and the averaging they differ: the check can fail.
  const auto alone = train_two_ranks(false, 5);
  EXPECT_FALSE(bit_identical(alone[0], alone[1]));
}

TEST(DataParallel, ReplicasThatDriftedAreReportedNamingWhat) {
  std::vector<std::string> messages(2);
  run_ranks(2, [&](int rank, const std::shared_ptr<DataParallel>& parallel) {
    torch::manual_seed(rank);  // not broadcast: as a task whose own optimiser skips the averaging
    auto net = small_net();
    try {
      parallel->check_replicas(net->parameters(), "the test net");
    } catch (const std::exception& e) {
      messages[static_cast<std::size_t>(rank)] = e.what();
    }
  });
  for (const auto& message : messages) {
    EXPECT_NE(message.find("the replicas of the test net differ between rank 0 and rank 1"), std::string::npos)
        << message;
    EXPECT_NE(message.find("gradients_finite"), std::string::npos) << message;
  }
}

TEST(DataParallel, EachRankReadsADisjointShareAndTogetherTheyCoverTheEpoch) {
  for (const int world_size : {2, 3, 4}) {
    stages::EpochPlan full;
    full.order = stages::shuffled(
        [] {
          std::vector<std::uint32_t> all(103);
          for (std::uint32_t i = 0; i < all.size(); ++i) all[i] = i;
          return all;
        }(),
        11, 2);
    const std::size_t used = full.order.size() / static_cast<std::size_t>(world_size) * world_size;
    std::multiset<std::uint32_t> seen;
    for (int rank = 0; rank < world_size; ++rank) {
      stages::EpochPlan share = full;
      take_share(share, rank, world_size);
      ASSERT_EQ(share.order.size(), used / static_cast<std::size_t>(world_size));  // equal shares: equal steps
      for (std::size_t p = 0; p < share.order.size(); ++p) {
        seen.insert(share.order[p]);
        // A sample keeps its place (and random streams) in the epoch's full order.
        const auto global = share.position_offset + share.position_stride * p;
        EXPECT_EQ(full.order[global], share.order[p]);
      }
    }
    EXPECT_EQ(seen.size(), used);
    EXPECT_EQ(std::set<std::uint32_t>(seen.begin(), seen.end()).size(), used) << "an image read twice";
    EXPECT_EQ(std::multiset<std::uint32_t>(full.order.begin(), full.order.begin() + static_cast<std::ptrdiff_t>(used)),
              seen);
  }
}

// A backbone and head of plain layers, for evaluate_accuracy.
class FlatBackbone final : public Backbone {
 public:
  FlatBackbone() { linear_ = register_module("linear", torch::nn::Linear(3 * 4 * 4, 8)); }
  torch::Tensor forward(torch::Tensor images) override { return torch::relu(linear_->forward(images.flatten(1))); }
  [[nodiscard]] FeatureShape feature_shape() const override { return {8, 1, 1}; }

 private:
  torch::nn::Linear linear_{nullptr};
};
class LinearHead final : public Head {
 public:
  LinearHead() { linear_ = register_module("linear", torch::nn::Linear(8, 3)); }
  torch::Tensor forward(torch::Tensor features) override { return linear_->forward(features); }

 private:
  torch::nn::Linear linear_{nullptr};
};

TEST(DataParallel, SharedEvaluationGivesTheFigureOfOneProcess) {
  // Each rank its own replica (made alike from one seed), as each process has.
  struct Replica {
    FlatBackbone backbone;
    LinearHead head;
  };
  auto replica = [] {
    torch::manual_seed(3);
    return std::make_unique<Replica>();
  };
  LabelledTensors data{torch::rand({103, 3, 4, 4}), torch::randint(0, 3, {103})};  // 103: a ragged last batch
  Compute compute;
  compute.channels_last = false;
  const auto one = replica();
  const double alone = evaluate_accuracy(one->backbone, one->head, data, compute, 10);
  ASSERT_GT(alone, 0.0);
  for (const int world_size : {2, 3}) {
    std::vector<std::unique_ptr<Replica>> replicas;
    for (int r = 0; r < world_size; ++r) replicas.push_back(replica());
    std::vector<double> shared(static_cast<std::size_t>(world_size));
    run_ranks(world_size, [&](int rank, const std::shared_ptr<DataParallel>& parallel) {
      Replica& mine = *replicas[static_cast<std::size_t>(rank)];
      shared[static_cast<std::size_t>(rank)] =
          evaluate_accuracy(mine.backbone, mine.head, data, compute, 10, parallel.get());
    });
    for (const double figure : shared) EXPECT_EQ(figure, alone) << world_size << " ranks";
  }
}

TEST(DataParallel, AGlobalBatchTheRanksCannotShareIsAConfigErrorNamingTheKey) {
  run_ranks(2, [](int /*rank*/, const std::shared_ptr<DataParallel>& parallel) {
    EXPECT_EQ(parallel->local_batch(32, "pretext.batch_size"), 16);
    try {
      (void)parallel->local_batch(33, "pretext.batch_size");
      ADD_FAILURE() << "33 was shared by 2 ranks";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("pretext.batch_size = 33"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("expected a multiple of 2"), std::string::npos) << e.what();
    }
  });
}

TEST(DataParallel, AFailureOnRank0IsReportedByTheOthersInsteadOfAWait) {
  std::vector<std::string> messages(2);
  run_ranks(2, [&](int rank, const std::shared_ptr<DataParallel>& parallel) {
    try {
      parallel->on_rank0("preparing the run directory", [] { throw UsageError("/runs/x already holds a run"); });
    } catch (const UsageError& e) {
      messages[static_cast<std::size_t>(rank)] = e.what();
    }
  });
  EXPECT_EQ(messages[0], "/runs/x already holds a run");
  EXPECT_EQ(messages[1], "rank 0 stopped at preparing the run directory: /runs/x already holds a run");
}

}  // namespace
}  // namespace pretext
