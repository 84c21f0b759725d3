// Torch-free interfaces for work done inside the flow graph.
#pragma once

#include <cstdint>

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

/// Turns one decoded image into a fixed number of labelled views
/// (rotation: four rotated copies labelled 0..3). Called concurrently.
class BOOST_SYMBOL_VISIBLE ViewMaker {
 public:
  virtual ~ViewMaker() = default;
  /// How many labelled views each input image becomes (fixed per task).
  [[nodiscard]] virtual int views_per_image() const = 0;
  /// Shape of each view for inputs of `input` shape. Throw if unsupported.
  [[nodiscard]] virtual ImageShape view_shape(const ImageShape& input) const { return input; }
  /// Writes views_per_image() views into `views[i]` and labels into `labels[i]`.
  /// The views point into recycled batch memory holding stale pixels: write
  /// every element of every view.
  /// `source_label` is the image's class label, or -1 for unlabelled data.
  virtual void make_views(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                          ImageView* views, std::int64_t* labels) const = 0;
};

}  // namespace pretext
