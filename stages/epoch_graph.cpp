#include "stages/epoch_graph.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "pretext/image_ops.hpp"

namespace pretext::stages {
namespace {

namespace flow = oneapi::tbb::flow;
using Clock = std::chrono::steady_clock;

// Purposes keep the random streams of different steps independent.
constexpr std::uint64_t kShufflePurpose = 0xC0FFEE;
constexpr std::uint64_t kViewPurpose = 0x7E5;
constexpr std::uint64_t kFirstStagePurpose = 0x100;

/// The message: a run of consecutive positions of the epoch's order.
struct Block {
  std::uint64_t seq = 0;
  std::size_t first = 0;  // position in plan.order
  std::size_t images = 0;
  ImageShape shape;                     // of one sample at this point
  std::vector<float> pixels;            // samples x shape.numel()
  std::vector<std::int64_t> labels;     // one per sample
  std::vector<std::uint32_t> index;     // dataset index per sample
  std::vector<std::uint32_t> view;      // view number per sample

  [[nodiscard]] std::size_t samples() const { return labels.size(); }
  [[nodiscard]] ImageView sample(std::size_t i) { return {pixels.data() + i * shape.numel(), shape}; }
};
using BlockPtr = std::shared_ptr<Block>;
using BatchPtr = std::shared_ptr<Batch>;
/// The batcher tags each batch with how many blocks it finished using.
using TaggedBatch = std::pair<BatchPtr, long long>;

/// One view per image, labelled with the image's class (transfer training).
class ClassLabelViews final : public ViewMaker {
 public:
  [[nodiscard]] int views_per_image() const override { return 1; }
  void make_views(ConstImageView image, std::int64_t source_label, SampleRng& /*rng*/, ImageView* views,
                  std::int64_t* labels) const override {
    std::copy(image.data, image.data + image.shape.numel(), views[0].data);
    labels[0] = source_label;
  }
};

// ---- node bodies: small functors over BlockPtr ------------------------------

struct Decode {
  const EpochPlan* plan;
  std::atomic<std::size_t>* in_flight;
  std::atomic<std::size_t>* peak;

  BlockPtr operator()(BlockPtr block) const {
    const std::size_t now = in_flight->fetch_add(1) + 1;
    std::size_t seen = peak->load();
    while (now > seen && !peak->compare_exchange_weak(seen, now)) {
    }
    const data::ImageSet& set = *plan->images;
    block->shape = set.shape;
    block->pixels.resize(block->images * set.shape.numel());
    block->labels.resize(block->images);
    block->index.resize(block->images);
    block->view.assign(block->images, 0);
    for (std::size_t i = 0; i < block->images; ++i) {
      const std::uint32_t idx = plan->order[block->first + i];
      block->index[i] = idx;
      block->labels[i] = set.labels[idx];
      ops::to_float(set.image(idx), block->sample(i));
    }
    return block;
  }
};

struct MakeViews {
  const ViewMaker* views;
  const EpochPlan* plan;

  BlockPtr operator()(BlockPtr in) const {
    const int per_image = views->views_per_image();
    auto out = std::make_shared<Block>();
    out->seq = in->seq;
    out->first = in->first;
    out->images = in->images;
    out->shape = views->view_shape(in->shape);
    const std::size_t samples = in->images * static_cast<std::size_t>(per_image);
    out->pixels.resize(samples * out->shape.numel());
    out->labels.resize(samples);
    out->index.resize(samples);
    out->view.resize(samples);
    std::vector<ImageView> targets(static_cast<std::size_t>(per_image));
    for (std::size_t i = 0; i < in->images; ++i) {
      const std::size_t base = i * static_cast<std::size_t>(per_image);
      for (int v = 0; v < per_image; ++v) {
        targets[v] = out->sample(base + v);
        out->index[base + v] = in->index[i];
        out->view[base + v] = static_cast<std::uint32_t>(v);
      }
      SampleRng rng(plan->seed, plan->epoch, in->index[i], 0, kViewPurpose);
      views->make_views(in->sample(i), in->labels[i], rng, targets.data(), out->labels.data() + base);
    }
    return out;
  }
};

struct ApplyStages {
  const std::vector<std::shared_ptr<const Stage>>* stages;
  const EpochPlan* plan;

  BlockPtr operator()(BlockPtr block) const {
    for (std::size_t s = 0; s < block->samples(); ++s) {
      for (std::size_t k = 0; k < stages->size(); ++k) {
        SampleRng rng(plan->seed, plan->epoch, block->index[s], block->view[s], kFirstStagePurpose + k);
        (*stages)[k]->apply(block->sample(s), rng);
      }
    }
    return block;
  }
};

/// Serial: copies samples, in block order, into fixed-size batches.
class Batcher {
 public:
  using Ports = flow::multifunction_node<BlockPtr, std::tuple<TaggedBatch>>::output_ports_type;

  Batcher(int batch_size, bool drop_last, std::uint64_t total_blocks)
      : batch_size_(batch_size), drop_last_(drop_last), total_blocks_(total_blocks) {}

  void operator()(const BlockPtr& block, Ports& ports) {
    for (std::size_t s = 0; s < block->samples(); ++s) {
      if (!current_) start(block->shape);
      const std::size_t n = block->shape.numel();
      const float* src = block->pixels.data() + s * n;
      std::copy(src, src + n, current_->pixels.data() + static_cast<std::size_t>(current_->count) * n);
      current_->labels[current_->count] = block->labels[s];
      if (++current_->count == batch_size_) emit(ports);
    }
    ++finished_blocks_;
    if (block->seq + 1 == total_blocks_) {
      if (current_ && !drop_last_) {
        current_->pixels.resize(static_cast<std::size_t>(current_->count) * current_->shape.numel());
        current_->labels.resize(current_->count);
        emit(ports);
      } else if (finished_blocks_ > 0) {
        std::get<0>(ports).try_put({nullptr, std::exchange(finished_blocks_, 0)});
      }
    }
  }

 private:
  void start(ImageShape shape) {
    current_ = std::make_shared<Batch>();
    current_->seq = next_seq_++;
    current_->shape = shape;
    current_->pixels.resize(static_cast<std::size_t>(batch_size_) * shape.numel());
    current_->labels.resize(batch_size_);
  }
  void emit(Ports& ports) {
    // Blocks finished so far are released with this batch: once the consumer
    // is done with it, nothing refers to them any more.
    std::get<0>(ports).try_put({std::move(current_), std::exchange(finished_blocks_, 0)});
    current_.reset();
  }

  std::int64_t batch_size_;
  bool drop_last_;
  std::uint64_t total_blocks_;
  BatchPtr current_;
  std::uint64_t next_seq_ = 0;
  long long finished_blocks_ = 0;
};

}  // namespace

std::vector<std::uint32_t> shuffled(std::vector<std::uint32_t> indices, std::uint64_t seed, std::uint64_t epoch) {
  SampleRng rng(seed, epoch, 0, 0, kShufflePurpose);
  for (std::size_t i = indices.size(); i > 1; --i) std::swap(indices[i - 1], indices[rng.below(i)]);
  return indices;
}

EpochStats run_epoch(const EpochSpec& spec, const BatchConsumer& consume) {
  const EpochPlan& plan = spec.plan;
  if (plan.images == nullptr) throw std::invalid_argument("run_epoch: no images");
  if (spec.batch_size <= 0 || spec.graph.block_size <= 0 || spec.graph.threads <= 0)
    throw std::invalid_argument("run_epoch: batch_size, block_size and threads must be positive");

  static const ClassLabelViews class_labels;
  const ViewMaker& views = spec.views != nullptr ? *spec.views : class_labels;
  const std::size_t block_images = static_cast<std::size_t>(spec.graph.block_size);
  const std::uint64_t total_blocks = (plan.order.size() + block_images - 1) / block_images;
  // A batch may straddle this many blocks; the limiter must admit them all or the batcher starves.
  const std::size_t samples_per_block = block_images * static_cast<std::size_t>(views.views_per_image());
  const std::size_t blocks_per_batch = (static_cast<std::size_t>(spec.batch_size) + samples_per_block - 1) /
                                       samples_per_block;
  const std::size_t limit = std::max<std::size_t>(spec.graph.max_blocks_in_flight, blocks_per_batch + 1);

  EpochStats stats;
  stats.block_limit = limit;
  stats.images = plan.order.size();
  if (plan.order.empty()) return stats;

  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> peak{0};
  const auto start = Clock::now();
  auto idle_since = start;

  oneapi::tbb::task_arena arena(spec.graph.threads);
  arena.execute([&] {
    flow::graph g;
    std::uint64_t next_block = 0;
    flow::input_node<BlockPtr> source(g, [&](oneapi::tbb::flow_control& control) -> BlockPtr {
      if (next_block == total_blocks) {
        control.stop();
        return nullptr;
      }
      auto block = std::make_shared<Block>();
      block->seq = next_block;
      block->first = next_block * block_images;
      block->images = std::min(block_images, plan.order.size() - block->first);
      ++next_block;
      return block;
    });
    flow::limiter_node<BlockPtr, long long> limiter(g, limit);
    flow::function_node<BlockPtr, BlockPtr> decode(g, flow::unlimited, Decode{&plan, &in_flight, &peak});
    flow::function_node<BlockPtr, BlockPtr> make_views(g, flow::unlimited, MakeViews{&views, &plan});
    flow::function_node<BlockPtr, BlockPtr> apply_stages(g, flow::unlimited, ApplyStages{&spec.stages, &plan});
    flow::sequencer_node<BlockPtr> in_order(g, [](const BlockPtr& b) { return static_cast<std::size_t>(b->seq); });
    flow::multifunction_node<BlockPtr, std::tuple<TaggedBatch>> batcher(
        g, flow::serial, Batcher(spec.batch_size, spec.drop_last, total_blocks));
    flow::function_node<TaggedBatch, long long> consumer(g, flow::serial, [&](const TaggedBatch& tagged) {
      if (tagged.first) {
        const auto begin = Clock::now();
        stats.wait_seconds += std::chrono::duration<double>(begin - idle_since).count();
        consume(*tagged.first);
        idle_since = Clock::now();
        stats.consumer_seconds += std::chrono::duration<double>(idle_since - begin).count();
        stats.samples += static_cast<std::uint64_t>(tagged.first->count);
        ++stats.batches;
      }
      in_flight.fetch_sub(static_cast<std::size_t>(tagged.second));
      return tagged.second;
    });

    flow::make_edge(source, limiter);
    flow::make_edge(limiter, decode);
    flow::make_edge(decode, make_views);
    flow::make_edge(make_views, apply_stages);
    flow::make_edge(apply_stages, in_order);
    flow::make_edge(in_order, batcher);
    flow::make_edge(flow::output_port<0>(batcher), consumer);
    flow::make_edge(consumer, limiter.decrementer());
    source.activate();
    g.wait_for_all();
  });

  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.max_blocks_in_flight = peak.load();
  return stats;
}

}  // namespace pretext::stages
