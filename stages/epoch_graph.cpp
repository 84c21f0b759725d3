#include "stages/epoch_graph.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "common/errors.hpp"
#include "pretext/image_ops.hpp"
#include "stages/tsan_annotations.hpp"

namespace pretext::stages {
namespace {

namespace flow = oneapi::tbb::flow;
using Clock = std::chrono::steady_clock;

// Purposes keep the random streams of different steps independent.
constexpr std::uint64_t kShufflePurpose = 0xC0FFEE;
constexpr std::uint64_t kViewPurpose = 0x7E5;
constexpr std::uint64_t kFirstStagePurpose = 0x100;

/// One view per image, labelled with the image's class (transfer training).
const RepeatedViews& class_label_views() {
  static const RepeatedViews one(1);
  return one;
}

/// What every node needs to know about one part of the epoch; fixed before the graph runs.
struct EpochLayout {
  const EpochPlan* plan = nullptr;
  const ViewMaker* views = nullptr;
  const EpochSpec* spec = nullptr;
  ImageShape image_shape;     // decoded
  ImageShape sample_shape;    // one view
  std::size_t per_image = 1;  // views per image
  std::size_t batch_size = 1;
  std::size_t samples = 0;  // delivered this epoch (images x views, less a dropped tail)
  std::size_t batches = 0;

  [[nodiscard]] std::uint32_t dataset_index(std::size_t position) const { return plan->order[position]; }
  /// The sample key of SampleRng for the image at `position`.
  [[nodiscard]] std::uint64_t rng_key(std::size_t position) const {
    return plan->key_by_position ? plan->position_offset + plan->position_stride * position : plan->order[position];
  }
  [[nodiscard]] const std::vector<std::shared_ptr<const Stage>>& stages_of(std::size_t view) const {
    return spec->view_stages.empty() ? spec->stages : spec->view_stages[view];
  }
};

/// One part's batch in the making. Recycled through the epoch, so its
/// vectors keep their capacity and nothing is allocated per sample.
struct PartWork {
  std::size_t first_sample = 0;   // epoch sample number of the batch's first slot
  std::size_t first_image = 0;    // position in plan.order of the image holding it
  std::size_t image_count = 0;    // images with at least one view in this batch
  std::vector<std::uint8_t> raw;  // one image's bytes, when the source is streamed
  std::vector<float> decoded;     // image_count decoded images
  std::vector<float> spill;       // views of an edge image that belong to a neighbouring batch
  std::vector<ImageView> targets;
  std::vector<std::int64_t> view_labels;
  Batch batch;
};

/// The message: batch `seq` of every part.
struct Work {
  std::uint64_t seq = 0;
  std::vector<PartWork> parts;
  std::vector<const Batch*> batches;  // &parts[i].batch, for the consumer
};

using Layouts = std::vector<EpochLayout>;

// ---- node bodies: small functors over Work* -------------------------------

void decode(const EpochLayout& layout, PartWork& work) {
  const data::ImageSet& set = *layout.plan->images;
  const ImageShape shape = layout.image_shape;
  work.decoded.resize(work.image_count * shape.numel());
  work.raw.resize(set.streamed() ? shape.numel() : 0);
  for (std::size_t i = 0; i < work.image_count; ++i) {
    const std::uint32_t index = layout.dataset_index(work.first_image + i);
    ops::to_float(set.image(index, work.raw.data()), {work.decoded.data() + i * shape.numel(), shape});
  }
}

/// Where a fault happened, for its message: epochs and steps count from 1,
/// as the progress lines and metrics.csv show them.
std::string where(const EpochLayout& l, const Batch& batch, std::uint32_t dataset_index) {
  return " (epoch " + std::to_string(l.plan->epoch + 1) + ", step " + std::to_string(batch.seq + 1) +
         ", dataset index " + std::to_string(dataset_index) + ")";
}

/// Writes each image's views straight into the batch's buffer; views that
/// fall outside this batch (an image split between two batches) go to spill.
void make_views(const EpochLayout& l, BufferPool& pool, PartWork& work) {
  const data::ImageSet& set = *l.plan->images;
  Batch& batch = work.batch;
  batch.storage = pool.acquire();
  const std::size_t numel = l.sample_shape.numel();
  const std::size_t count = static_cast<std::size_t>(batch.count);
  work.spill.resize(l.per_image * numel);
  work.targets.resize(l.per_image);
  work.view_labels.resize(l.per_image);
  for (std::size_t i = 0; i < work.image_count; ++i) {
    const std::size_t position = work.first_image + i;
    const std::uint32_t index = l.dataset_index(position);
    for (std::size_t v = 0; v < l.per_image; ++v) {
      const std::size_t sample = position * l.per_image + v;
      const bool here = sample >= work.first_sample && sample - work.first_sample < count;
      float* target = here ? batch.storage.get() + (sample - work.first_sample) * numel : work.spill.data() + v * numel;
      work.targets[v] = {target, l.sample_shape};
    }
    SampleRng rng(l.plan->seed, l.plan->epoch, l.rng_key(position), 0, kViewPurpose);
    try {
      l.views->make_views({work.decoded.data() + i * l.image_shape.numel(), l.image_shape}, set.labels[index], rng,
                          ViewSlots(work.targets.data(), work.view_labels.data(), static_cast<int>(l.per_image)));
    } catch (...) {
      rethrow_with_context(where(l, batch, index));
    }
    for (std::size_t v = 0; v < l.per_image; ++v) {
      const std::size_t sample = position * l.per_image + v;
      if (sample >= work.first_sample && sample - work.first_sample < count)
        batch.labels[sample - work.first_sample] = work.view_labels[v];
    }
  }
}

/// Each stage of the sample's view in turn on each sample, in place in the batch's buffer.
void apply_stages(const EpochLayout& l, PartWork& work) {
  if (l.spec->stages.empty() && l.spec->view_stages.empty()) return;
  const std::size_t numel = l.sample_shape.numel();
  for (std::size_t s = 0; s < static_cast<std::size_t>(work.batch.count); ++s) {
    const std::size_t sample = work.first_sample + s;
    const std::uint64_t key = l.rng_key(sample / l.per_image);
    const std::uint64_t view = sample % l.per_image;
    const auto& stages = l.stages_of(view);
    const ImageView image{work.batch.storage.get() + s * numel, l.sample_shape};
    try {
      for (std::size_t k = 0; k < stages.size(); ++k) {
        SampleRng rng(l.plan->seed, l.plan->epoch, key, view, kFirstStagePurpose + k);
        stages[k]->apply(image, rng);
      }
    } catch (...) {
      rethrow_with_context(where(l, work.batch, l.dataset_index(sample / l.per_image)));
    }
  }
}

struct Decode {
  const Layouts* layouts;

  Work* operator()(Work* work) const {
    PRETEXT_TSAN_ACQUIRE(work);  // handed over by the previous node, see tsan_annotations.hpp
    for (std::size_t p = 0; p < layouts->size(); ++p) decode((*layouts)[p], work->parts[p]);
    PRETEXT_TSAN_RELEASE(work);  // to the next node
    return work;
  }
};

struct MakeViews {
  const Layouts* layouts;
  const std::vector<std::shared_ptr<BufferPool>>* pools;

  Work* operator()(Work* work) const {
    PRETEXT_TSAN_ACQUIRE(work);
    for (std::size_t p = 0; p < layouts->size(); ++p) make_views((*layouts)[p], *(*pools)[p], work->parts[p]);
    PRETEXT_TSAN_RELEASE(work);
    return work;
  }
};

struct ApplyStages {
  const Layouts* layouts;

  Work* operator()(Work* work) const {
    PRETEXT_TSAN_ACQUIRE(work);
    for (std::size_t p = 0; p < layouts->size(); ++p) apply_stages((*layouts)[p], work->parts[p]);
    PRETEXT_TSAN_RELEASE(work);
    return work;
  }
};

/// Serial: hands out the next batch's sample ranges in a recycled Work.
class NextBatch {
 public:
  NextBatch(const Layouts* layouts, std::size_t batches, oneapi::tbb::concurrent_queue<Work*>* free,
            std::vector<std::unique_ptr<Work>>* owned)
      : layouts_(layouts), batches_(batches), free_(free), owned_(owned) {}

  Work* operator()(oneapi::tbb::flow_control& control) {
    if (next_ == batches_) {
      control.stop();
      return nullptr;
    }
    Work* work = nullptr;
    if (!free_->try_pop(work)) {
      work = owned_->emplace_back(std::make_unique<Work>()).get();
      work->parts.resize(layouts_->size());
      for (const auto& part : work->parts) work->batches.push_back(&part.batch);
    }
    work->seq = next_;
    for (std::size_t p = 0; p < layouts_->size(); ++p) {
      const EpochLayout& l = (*layouts_)[p];
      PartWork& part = work->parts[p];
      part.first_sample = next_ * l.batch_size;
      const std::size_t count = std::min(l.batch_size, l.samples - part.first_sample);
      part.first_image = part.first_sample / l.per_image;
      part.image_count = (part.first_sample + count + l.per_image - 1) / l.per_image - part.first_image;
      part.batch.seq = next_;
      part.batch.shape = l.sample_shape;
      part.batch.count = static_cast<std::int64_t>(count);
      part.batch.labels.resize(count);
    }
    ++next_;
    PRETEXT_TSAN_RELEASE(work);  // to the next node
    return work;
  }

 private:
  const Layouts* layouts_;
  std::size_t batches_;
  oneapi::tbb::concurrent_queue<Work*>* free_;
  std::vector<std::unique_ptr<Work>>* owned_;  // only this (serial) body adds to it
  std::uint64_t next_ = 0;
};

EpochLayout layout_for(const EpochSpec& spec) {
  if (spec.plan.images == nullptr) throw std::invalid_argument("run_epoch: no images");
  if (spec.batch_size <= 0) throw std::invalid_argument("run_epoch: batch_size must be positive");
  const ViewMaker& views = spec.views != nullptr ? *spec.views : class_label_views();
  EpochLayout l;
  l.plan = &spec.plan;
  l.views = &views;
  l.spec = &spec;
  l.image_shape = spec.plan.images->shape;
  l.sample_shape = views.view_shape(l.image_shape);
  if (views.views_per_image() <= 0) throw std::invalid_argument("run_epoch: views_per_image must be positive");
  l.per_image = static_cast<std::size_t>(views.views_per_image());
  if (!spec.view_stages.empty() && spec.view_stages.size() != l.per_image)
    throw std::invalid_argument("run_epoch: view_stages has " + std::to_string(spec.view_stages.size()) +
                                " lists for " + std::to_string(l.per_image) + " views per image");
  l.batch_size = static_cast<std::size_t>(spec.batch_size);
  const std::size_t total = spec.plan.order.size() * l.per_image;
  l.batches = spec.drop_last ? total / l.batch_size : (total + l.batch_size - 1) / l.batch_size;
  l.samples = spec.drop_last ? l.batches * l.batch_size : total;
  return l;
}

}  // namespace

std::vector<std::uint32_t> shuffled(std::vector<std::uint32_t> indices, std::uint64_t seed, std::uint64_t epoch) {
  SampleRng rng(seed, epoch, 0, 0, kShufflePurpose);
  for (std::size_t i = indices.size(); i > 1; --i) std::swap(indices[i - 1], indices[rng.below(i)]);
  return indices;
}

RepeatedViews::RepeatedViews(int count) : count_(count) {
  if (count <= 0) throw std::invalid_argument("RepeatedViews: count must be positive");
}

void RepeatedViews::make_views(ConstImageView image, std::int64_t source_label, SampleRng& /*rng*/,
                               const ViewSlots& views) const {
  for (int v = 0; v < count_; ++v) {
    copy_image(image, views.view(v));
    views.set_label(v, source_label);
  }
}

EpochStats run_epoch(const EpochSpec& spec, const BatchConsumer& consume) {
  return run_joint_epoch({&spec}, [&](const std::vector<const Batch*>& parts) { consume(*parts.front()); });
}

EpochStats run_joint_epoch(const std::vector<const EpochSpec*>& parts, const JointConsumer& consume) {
  if (parts.empty()) throw std::invalid_argument("run_joint_epoch: no parts");
  const GraphOptions& graph_options = parts.front()->graph;
  if (graph_options.max_batches_in_flight <= 0 || graph_options.threads <= 0)
    throw std::invalid_argument("run_epoch: max_batches_in_flight and threads must be positive");

  Layouts layouts;
  std::vector<std::shared_ptr<BufferPool>> pools;
  EpochStats stats;
  std::size_t batches = SIZE_MAX;
  for (const EpochSpec* spec : parts) {
    const EpochLayout& layout = layouts.emplace_back(layout_for(*spec));
    const std::size_t batch_floats = layout.batch_size * layout.sample_shape.numel();
    pools.push_back(spec->buffers && spec->buffers->floats() == batch_floats ? spec->buffers
                                                                             : BufferPool::create(batch_floats));
    batches = std::min(batches, layout.batches);
    stats.images += spec->plan.order.size();
  }
  stats.batch_limit = static_cast<std::size_t>(graph_options.max_batches_in_flight);
  if (batches == 0) return stats;

  std::vector<std::unique_ptr<Work>> owned;
  oneapi::tbb::concurrent_queue<Work*> free;
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> peak{0};
  const auto start = Clock::now();
  auto idle_since = start;

  oneapi::tbb::task_arena arena(graph_options.threads);
  arena.execute([&] {
    flow::graph g;
    flow::input_node<Work*> source(g, NextBatch(&layouts, batches, &free, &owned));
    flow::limiter_node<Work*> limiter(g, stats.batch_limit);
    flow::function_node<Work*, Work*> decode_node(g, flow::unlimited, [&](Work* work) {
      const std::size_t now = in_flight.fetch_add(1) + 1;
      std::size_t seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      return Decode{&layouts}(work);
    });
    flow::function_node<Work*, Work*> views_node(g, flow::unlimited, MakeViews{&layouts, &pools});
    flow::function_node<Work*, Work*> stages_node(g, flow::unlimited, ApplyStages{&layouts});
    flow::sequencer_node<Work*> in_order(g, [](Work* const& w) { return static_cast<std::size_t>(w->seq); });
    flow::function_node<Work*, flow::continue_msg> consumer(g, flow::serial, [&](Work* work) {
      // The batch, and the consumer's own state (stats, idle_since) from its previous call,
      // which may have run on another thread.
      PRETEXT_TSAN_ACQUIRE(work);
      PRETEXT_TSAN_ACQUIRE(&stats);
      const auto begin = Clock::now();
      stats.wait_seconds += std::chrono::duration<double>(begin - idle_since).count();
      consume(work->batches);
      idle_since = Clock::now();
      stats.consumer_seconds += std::chrono::duration<double>(idle_since - begin).count();
      for (auto& part : work->parts) {
        stats.samples += static_cast<std::uint64_t>(part.batch.count);
        part.batch.storage.reset();  // back to the pool unless the consumer kept it
      }
      ++stats.batches;
      in_flight.fetch_sub(1);
      free.push(work);
      PRETEXT_TSAN_RELEASE(&stats);
      return flow::continue_msg();
    });

    flow::make_edge(source, limiter);
    flow::make_edge(limiter, decode_node);
    flow::make_edge(decode_node, views_node);
    flow::make_edge(views_node, stages_node);
    flow::make_edge(stages_node, in_order);
    flow::make_edge(in_order, consumer);
    flow::make_edge(consumer, limiter.decrementer());
    source.activate();
    try {
      g.wait_for_all();
    } catch (...) {
      // When a node body threw, wait_for_all rethrows before oneTBB's "acquired" annotation
      // (tsan_annotations.hpp). Waiting again on the now idle graph returns at once and makes
      // it, so ThreadSanitizer sees the bodies finish before the nodes are destroyed.
      g.wait_for_all();
      throw;
    }
  });

  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.max_batches_in_flight = peak.load();
  return stats;
}

}  // namespace pretext::stages
