// Torch-free interfaces for work done inside the flow graph.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <boost/config.hpp>

#include "pretext/image.hpp"

namespace pretext {

/// A per-image transform between pretext labelling and batching, in place.
/// Called concurrently from TBB workers: must not mutate shared state.
/// `rng` is private to this image, this view and this stage.
class BOOST_SYMBOL_VISIBLE Stage {
 public:
  virtual ~Stage() = default;
  virtual void apply(ImageView image, SampleRng& rng) const = 0;
};

/// The views one make_views call must write: exactly size() views, each of
/// shape(), and one label per view. view(i) and set_label(i, ...) check `i`
/// and throw std::out_of_range past the end, so a task that makes one view
/// too many gets a message naming the call, not a crash. Inline, so the check
/// is compiled into the plugin; its layout is part of the plugin API.
class ViewSlots {
 public:
  ViewSlots(ImageView* views, std::int64_t* labels, int count) : views_(views), labels_(labels), count_(count) {}

  /// How many views this call must write: the task's views_per_image().
  [[nodiscard]] int size() const { return count_; }
  /// The shape of every view: the task's view_shape() for this input.
  [[nodiscard]] ImageShape shape() const { return count_ > 0 ? views_[0].shape : ImageShape{}; }

  /// View `i`, to be written in full: it holds stale pixels from an earlier batch.
  [[nodiscard]] ImageView view(int i) const { return views_[check(i)]; }
  /// Sets view `i`'s label (>= 0). Every view needs one.
  void set_label(int i, std::int64_t label) const { labels_[check(i)] = label; }
  [[nodiscard]] std::int64_t label(int i) const { return labels_[check(i)]; }

 private:
  [[nodiscard]] int check(int i) const {
    if (i < 0 || i >= count_)
      throw std::out_of_range("view " + std::to_string(i) + " does not exist: this call makes " +
                              std::to_string(count_) + " views (views_per_image()), numbered 0 to " +
                              std::to_string(count_ - 1));
    return i;
  }

  ImageView* views_;
  std::int64_t* labels_;
  int count_;
};

/// Turns one decoded image into a fixed number of labelled views
/// (rotation: four rotated copies labelled 0..3). Called concurrently.
class BOOST_SYMBOL_VISIBLE ViewMaker {
 public:
  virtual ~ViewMaker() = default;
  /// How many labelled views each input image becomes (fixed per task).
  [[nodiscard]] virtual int views_per_image() const = 0;
  /// Shape of each view for inputs of `input` shape. Throw if unsupported.
  [[nodiscard]] virtual ImageShape view_shape(const ImageShape& input) const { return input; }
  /// Writes every element of each of views.size() views and sets each view's
  /// label. The host checks both after every call (and, in its checked mode,
  /// that nothing was written past a view's end) and stops the run with a
  /// message naming the task, the epoch and the image if not.
  /// `source_label` is the image's class label, or -1 for unlabelled data.
  virtual void make_views(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                          const ViewSlots& views) const = 0;
};

}  // namespace pretext
