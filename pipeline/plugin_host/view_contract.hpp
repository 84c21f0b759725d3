// The view contract, enforced: what a pretext task's make_views must do, and
// how the host finds out when it does not.
//
// A task learns from ViewSlots how many views to write (views_per_image())
// and their shape (view_shape() of the input); ViewSlots refuses an index
// past the end. After every call the host checks the rest:
//
//   basic    each view's first and last element and each label are preset to
//            a marker the task cannot mean (a NaN with a fixed payload, and
//            INT64_MIN) and must have changed; labels must be >= 0. Two
//            stores and two loads per view, in place in the batch.
//   guarded  basic, and the task writes into scratch memory in which every
//            view sits between guard regions. Every element of every view
//            must have been written, and nothing beyond a view's end (up to
//            the guard's size) may have been; the views are then copied into
//            the batch. A write further out than the guard is not caught.
//
// A breach is a PluginFault (exit 1) naming the task, what was expected and
// what was found; the epoch graph adds the epoch, step and dataset index.
// Nothing has been trained on the bad batch and no checkpoint is written
// after it, so the run directory stays resumable once the task is fixed.
// The cost of each level is in docs/performance.md.
#pragma once

#include <cstdint>
#include <string>

#include "pretext/stage.hpp"

namespace pretext {

enum class ViewChecks { basic, guarded };

/// "basic" or "guarded", as [pretext] check_views spells them.
const char* to_string(ViewChecks checks);

/// A pretext task as the flow graph's view maker: its faults named after it
/// and its views checked as above. Holds references: the task and the label
/// must outlive it.
class GuardedViewMaker final : public ViewMaker {
 public:
  GuardedViewMaker(const ViewMaker& task, const std::string& plugin, ViewChecks checks = ViewChecks::guarded);

  [[nodiscard]] int views_per_image() const override;
  [[nodiscard]] ImageShape view_shape(const ImageShape& input) const override;
  void make_views(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                  const ViewSlots& views) const override;

 private:
  void make_views_basic(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                        const ViewSlots& views) const;
  void make_views_guarded(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                          const ViewSlots& views) const;
  void call_task(ConstImageView image, std::int64_t source_label, SampleRng& rng, const ViewSlots& views) const;
  [[noreturn]] void breach(const std::string& what, const char* function = "make_views") const;
  void check_labels(const ViewSlots& views) const;

  const ViewMaker& task_;
  const std::string& plugin_;
  ViewChecks checks_;
};

}  // namespace pretext
