#include "stages/epoch_graph.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <utility>

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

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
class ClassLabelViews final : public ViewMaker {
 public:
  [[nodiscard]] int views_per_image() const override { return 1; }
  void make_views(ConstImageView image, std::int64_t source_label, SampleRng& /*rng*/, ImageView* views,
                  std::int64_t* labels) const override {
    std::copy(image.data, image.data + image.shape.numel(), views[0].data);
    labels[0] = source_label;
  }
};

/// What every node needs to know about the epoch; fixed before the graph runs.
struct EpochLayout {
  const EpochPlan* plan = nullptr;
  const ViewMaker* views = nullptr;
  const std::vector<std::shared_ptr<const Stage>>* stages = nullptr;
  ImageShape image_shape;    // decoded
  ImageShape sample_shape;   // one view
  std::size_t per_image = 1;  // views per image
  std::size_t batch_size = 1;
  std::size_t samples = 0;    // delivered this epoch (images x views, less a dropped tail)
  std::size_t batches = 0;

  [[nodiscard]] std::uint32_t dataset_index(std::size_t position) const { return plan->order[position]; }
};

/// The message: one batch in the making. Recycled through the epoch, so its
/// vectors keep their capacity and nothing is allocated per sample.
struct Work {
  std::uint64_t seq = 0;
  std::size_t first_sample = 0;  // epoch sample number of the batch's first slot
  std::size_t first_image = 0;   // position in plan.order of the image holding it
  std::size_t image_count = 0;   // images with at least one view in this batch
  std::vector<std::uint8_t> raw;  // one image's bytes, when the source is streamed
  std::vector<float> decoded;    // image_count decoded images
  std::vector<float> spill;      // views of an edge image that belong to a neighbouring batch
  std::vector<ImageView> targets;
  std::vector<std::int64_t> view_labels;
  Batch batch;
};

// ---- node bodies: small functors over Work* -------------------------------

struct Decode {
  const EpochLayout* layout;

  Work* operator()(Work* work) const {
    PRETEXT_TSAN_ACQUIRE(work);  // handed over by the previous node, see tsan_annotations.hpp
    const data::ImageSet& set = *layout->plan->images;
    const ImageShape shape = layout->image_shape;
    work->decoded.resize(work->image_count * shape.numel());
    work->raw.resize(set.streamed() ? shape.numel() : 0);
    for (std::size_t i = 0; i < work->image_count; ++i) {
      const std::uint32_t index = layout->dataset_index(work->first_image + i);
      ops::to_float(set.image(index, work->raw.data()), {work->decoded.data() + i * shape.numel(), shape});
    }
    PRETEXT_TSAN_RELEASE(work);  // to the next node
    return work;
  }
};

/// Writes each image's views straight into the batch's buffer; views that
/// fall outside this batch (an image split between two batches) go to spill.
struct MakeViews {
  const EpochLayout* layout;
  BufferPool* pool;

  Work* operator()(Work* work) const {
    PRETEXT_TSAN_ACQUIRE(work);  // handed over by the previous node, see tsan_annotations.hpp
    const EpochLayout& l = *layout;
    const data::ImageSet& set = *l.plan->images;
    Batch& batch = work->batch;
    batch.storage = pool->acquire();
    const std::size_t numel = l.sample_shape.numel();
    const std::size_t count = static_cast<std::size_t>(batch.count);
    work->spill.resize(l.per_image * numel);
    work->targets.resize(l.per_image);
    work->view_labels.resize(l.per_image);
    for (std::size_t i = 0; i < work->image_count; ++i) {
      const std::size_t position = work->first_image + i;
      const std::uint32_t index = l.dataset_index(position);
      for (std::size_t v = 0; v < l.per_image; ++v) {
        const std::size_t sample = position * l.per_image + v;
        const bool here = sample >= work->first_sample && sample - work->first_sample < count;
        float* target = here ? batch.storage.get() + (sample - work->first_sample) * numel : work->spill.data() + v * numel;
        work->targets[v] = {target, l.sample_shape};
      }
      SampleRng rng(l.plan->seed, l.plan->epoch, index, 0, kViewPurpose);
      l.views->make_views({work->decoded.data() + i * l.image_shape.numel(), l.image_shape}, set.labels[index], rng,
                          work->targets.data(), work->view_labels.data());
      for (std::size_t v = 0; v < l.per_image; ++v) {
        const std::size_t sample = position * l.per_image + v;
        if (sample >= work->first_sample && sample - work->first_sample < count)
          batch.labels[sample - work->first_sample] = work->view_labels[v];
      }
    }
    PRETEXT_TSAN_RELEASE(work);  // to the next node
    return work;
  }
};

/// Each stage in turn on each sample, in place in the batch's buffer.
struct ApplyStages {
  const EpochLayout* layout;

  Work* operator()(Work* work) const {
    PRETEXT_TSAN_ACQUIRE(work);  // handed over by the previous node, see tsan_annotations.hpp
    const EpochLayout& l = *layout;
    if (l.stages->empty()) {
      PRETEXT_TSAN_RELEASE(work);
      return work;
    }
    const std::size_t numel = l.sample_shape.numel();
    for (std::size_t s = 0; s < static_cast<std::size_t>(work->batch.count); ++s) {
      const std::size_t sample = work->first_sample + s;
      const std::uint32_t index = l.dataset_index(sample / l.per_image);
      const std::uint64_t view = sample % l.per_image;
      const ImageView image{work->batch.storage.get() + s * numel, l.sample_shape};
      for (std::size_t k = 0; k < l.stages->size(); ++k) {
        SampleRng rng(l.plan->seed, l.plan->epoch, index, view, kFirstStagePurpose + k);
        (*l.stages)[k]->apply(image, rng);
      }
    }
    PRETEXT_TSAN_RELEASE(work);  // to the next node
    return work;
  }
};

/// Serial: hands out the next batch's sample range in a recycled Work.
class NextBatch {
 public:
  NextBatch(const EpochLayout* layout, oneapi::tbb::concurrent_queue<Work*>* free,
            std::vector<std::unique_ptr<Work>>* owned)
      : layout_(layout), free_(free), owned_(owned) {}

  Work* operator()(oneapi::tbb::flow_control& control) {
    const EpochLayout& l = *layout_;
    if (next_ == l.batches) {
      control.stop();
      return nullptr;
    }
    Work* work = nullptr;
    if (!free_->try_pop(work)) work = owned_->emplace_back(std::make_unique<Work>()).get();
    work->seq = next_;
    work->first_sample = next_ * l.batch_size;
    const std::size_t count = std::min(l.batch_size, l.samples - work->first_sample);
    work->first_image = work->first_sample / l.per_image;
    work->image_count = (work->first_sample + count + l.per_image - 1) / l.per_image - work->first_image;
    work->batch.seq = next_;
    work->batch.shape = l.sample_shape;
    work->batch.count = static_cast<std::int64_t>(count);
    work->batch.labels.resize(count);
    ++next_;
    PRETEXT_TSAN_RELEASE(work);  // to the next node
    return work;
  }

 private:
  const EpochLayout* layout_;
  oneapi::tbb::concurrent_queue<Work*>* free_;
  std::vector<std::unique_ptr<Work>>* owned_;  // only this (serial) body adds to it
  std::uint64_t next_ = 0;
};

EpochLayout layout_for(const EpochSpec& spec, const ViewMaker& views) {
  EpochLayout l;
  l.plan = &spec.plan;
  l.views = &views;
  l.stages = &spec.stages;
  l.image_shape = spec.plan.images->shape;
  l.sample_shape = views.view_shape(l.image_shape);
  if (views.views_per_image() <= 0) throw std::invalid_argument("run_epoch: views_per_image must be positive");
  l.per_image = static_cast<std::size_t>(views.views_per_image());
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

EpochStats run_epoch(const EpochSpec& spec, const BatchConsumer& consume) {
  const EpochPlan& plan = spec.plan;
  if (plan.images == nullptr) throw std::invalid_argument("run_epoch: no images");
  if (spec.batch_size <= 0 || spec.graph.max_batches_in_flight <= 0 || spec.graph.threads <= 0)
    throw std::invalid_argument("run_epoch: batch_size, max_batches_in_flight and threads must be positive");

  static const ClassLabelViews class_labels;
  const EpochLayout layout = layout_for(spec, spec.views != nullptr ? *spec.views : class_labels);
  const std::size_t batch_floats = layout.batch_size * layout.sample_shape.numel();
  const std::shared_ptr<BufferPool> pool = spec.buffers && spec.buffers->floats() == batch_floats
                                               ? spec.buffers
                                               : BufferPool::create(batch_floats);

  EpochStats stats;
  stats.batch_limit = static_cast<std::size_t>(spec.graph.max_batches_in_flight);
  stats.images = plan.order.size();
  if (layout.batches == 0) return stats;

  std::vector<std::unique_ptr<Work>> owned;
  oneapi::tbb::concurrent_queue<Work*> free;
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> peak{0};
  const auto start = Clock::now();
  auto idle_since = start;

  oneapi::tbb::task_arena arena(spec.graph.threads);
  arena.execute([&] {
    flow::graph g;
    flow::input_node<Work*> source(g, NextBatch(&layout, &free, &owned));
    flow::limiter_node<Work*> limiter(g, stats.batch_limit);
    flow::function_node<Work*, Work*> decode(g, flow::unlimited, [&](Work* work) {
      const std::size_t now = in_flight.fetch_add(1) + 1;
      std::size_t seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      return Decode{&layout}(work);
    });
    flow::function_node<Work*, Work*> make_views(g, flow::unlimited, MakeViews{&layout, pool.get()});
    flow::function_node<Work*, Work*> apply_stages(g, flow::unlimited, ApplyStages{&layout});
    flow::sequencer_node<Work*> in_order(g, [](Work* const& w) { return static_cast<std::size_t>(w->seq); });
    flow::function_node<Work*, flow::continue_msg> consumer(g, flow::serial, [&](Work* work) {
      // The batch, and the consumer's own state (stats, idle_since) from its previous call,
      // which may have run on another thread.
      PRETEXT_TSAN_ACQUIRE(work);
      PRETEXT_TSAN_ACQUIRE(&stats);
      const auto begin = Clock::now();
      stats.wait_seconds += std::chrono::duration<double>(begin - idle_since).count();
      consume(work->batch);
      idle_since = Clock::now();
      stats.consumer_seconds += std::chrono::duration<double>(idle_since - begin).count();
      stats.samples += static_cast<std::uint64_t>(work->batch.count);
      ++stats.batches;
      work->batch.storage.reset();  // back to the pool unless the consumer kept it
      in_flight.fetch_sub(1);
      free.push(work);
      PRETEXT_TSAN_RELEASE(&stats);
      return flow::continue_msg();
    });

    flow::make_edge(source, limiter);
    flow::make_edge(limiter, decode);
    flow::make_edge(decode, make_views);
    flow::make_edge(make_views, apply_stages);
    flow::make_edge(apply_stages, in_order);
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
