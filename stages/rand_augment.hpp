// RandAugment as a flow-graph stage: the strong view of FixMatch.
//
// FixMatch trains on an unlabelled image twice: a weakly augmented view
// (flip and crop) makes a pseudo-label, and the model must predict it from a
// strongly augmented view of the same image. This stage makes the strong
// view: per sample it applies `ops` operations drawn uniformly, with
// replacement, from the pool below, each at magnitude m on a 0..10 scale
// (m fixed, or drawn uniformly from [0, magnitude] per operation, as
// FixMatch's RandAugmentMC), then a final cutout, as FixMatch does.
//
// The pool is FixMatch's (kekmodel/FixMatch-pytorch fixmatch_augment_pool,
// PIL semantics) without Identity and Color: 12 ops. With f = m / 10:
//
//   op            at fraction f in [0, 1]                               at f = 0
//   translate_x   move by round(0.3 f w) pixels, ± ; fill 0.5           identity
//   translate_y   move by round(0.3 f h) pixels, ± ; fill 0.5           identity
//   shear_x       out(x, y) = in(x + s y, y), s = ± 0.3 f, about the
//                 top-left corner as PIL's AFFINE (1, s, 0, 0, 1, 0)    identity
//   shear_y       out(x, y) = in(x, y + s x), s = ± 0.3 f               identity
//   rotate        ± 30 f degrees about the centre (positive is
//                 counter-clockwise, as PIL's Image.rotate)             identity
//   autocontrast  per channel, [min, max] -> [0, 1]                     (none)
//   equalize      per channel, PIL's ImageOps.equalize on the 8-bit
//                 level round(255 v)                                    (none)
//   posterize     keep the top 8 - round(4 f) bits of the 8-bit level   identity
//   solarize      v -> 1 - v where round(255 v) >= 256 (1 - f), i.e.
//                 PIL's ImageOps.solarize(256 - 256 f): f = 0 inverts
//                 nothing, not even white; f = 1 inverts everything     identity
//   sharpness     blend with PIL's SMOOTH image, factor 1 ± 0.9 f       identity
//   brightness    ops::adjust_brightness, factor 1 ± 0.9 f              identity
//   contrast      ops::adjust_contrast, factor 1 ± 0.9 f                identity
//
// and, after them, cutout: a square of side round(cutout * min(h, w)) at a
// uniformly random pixel centre, clipped at the border, filled with 0.5.
//
// Unlike kekmodel's code (and the FixMatch paper's table), distortion
// grows with the magnitude in every op, as in torchvision's RandAugment:
// posterize keeps 8 - round(4 f) bits (kekmodel: 4 + int(4 f), so f = 1 is
// the identity) and the enhancers use 1 ± 0.9 f (kekmodel: 0.05 + 0.9 f,
// always darker or flatter, the identity near f = 1). Every drawn op runs
// (kekmodel flips a coin per op), and a random magnitude is continuous in
// [0, magnitude] (kekmodel: an integer in [1, magnitude - 1]). Geometric
// ops sample bilinearly and fill with grey 0.5 (kekmodel: nearest, black;
// its cutout is 16 px of grey 127 on 32 x 32 images).
//
// Sampling follows PIL's transform(): each output pixel centre is mapped
// back into the source; a source point outside the image gives the fill,
// otherwise the four nearest pixels are blended, edge pixels repeated.
// "±" is a fair random sign. Every draw comes from the sample's SampleRng,
// so a sample's strong view depends only on (seed, epoch, index, view).
// The operations work on planar float CHW images in [0, 1] of any channel
// count and size, in place; they keep no shared state (the geometric ones,
// sharpness and equalize work through thread_local scratch buffers, which
// stop allocating once they have grown to the image size).
#pragma once

#include <cstdint>

#include "pretext/options.hpp"
#include "pretext/stage.hpp"

namespace pretext::stages {

namespace augment {

/// Grey written where a geometric op or cutout has no source pixel.
inline constexpr float kFill = 0.5F;

// The pool, in a fixed order (a draw picks an index into it).
enum class Op : std::uint8_t {
  translate_x,
  translate_y,
  shear_x,
  shear_y,
  rotate,
  autocontrast,
  equalize,
  posterize,
  solarize,
  sharpness,
  brightness,
  contrast,
};
inline constexpr int kOpCount = 12;
const char* op_name(Op op);

/// Applies `op` at magnitude fraction `f` in [0, 1], drawing its sign from `rng`.
void apply(ImageView image, Op op, double f, SampleRng& rng);

// Each op at fraction f, drawing the sign (one draw) where it has a direction.
void translate_x(ImageView image, double f, SampleRng& rng);
void translate_y(ImageView image, double f, SampleRng& rng);
void shear_x(ImageView image, double f, SampleRng& rng);
void shear_y(ImageView image, double f, SampleRng& rng);
void rotate(ImageView image, double f, SampleRng& rng);
void autocontrast(ImageView image);
void equalize(ImageView image);
void posterize(ImageView image, double f);
void solarize(ImageView image, double f);
void sharpness(ImageView image, double f, SampleRng& rng);
void brightness(ImageView image, double f, SampleRng& rng);
void contrast(ImageView image, double f, SampleRng& rng);
/// A square of side round(0.5 f min(h, w)) at a random centre (two draws: row, column).
void cutout(ImageView image, double f, SampleRng& rng);

// The same with the signed amount given: what the ops above call, and what
// tests call with known values.
/// Moves the content `pixels` to the right (left if negative); fills the rest.
void translate_x_by(ImageView image, int pixels);
/// Moves the content `pixels` down (up if negative); fills the rest.
void translate_y_by(ImageView image, int pixels);
/// out(x, y) = in(x + s (y + 1/2), y) in pixel-centre coordinates (PIL's AFFINE (1, s, 0, 0, 1, 0)).
void shear_x_by(ImageView image, double s);
/// out(x, y) = in(x, y + s (x + 1/2)) (PIL's AFFINE (1, 0, 0, s, 1, 0)).
void shear_y_by(ImageView image, double s);
/// Counter-clockwise by `degrees` about (w / 2, h / 2), as PIL's Image.rotate.
void rotate_by(ImageView image, double degrees);
/// Keeps the top `bits` (1..8) bits of each value quantised to 8 bits.
void posterize_bits(ImageView image, int bits);
/// factor * image + (1 - factor) * SMOOTH(image), clamped; the border is kept.
void adjust_sharpness(ImageView image, float factor);
/// A square of side `side` at a random centre: row below(h), then column below(w).
void cutout_side(ImageView image, int side, SampleRng& rng);
/// Fills rows [cy - side/2, cy - side/2 + side) x the same columns around cx,
/// clipped to the image, with kFill.
void cutout_at(ImageView image, int side, int centre_y, int centre_x);

}  // namespace augment

/// The stage's options: [[pretext.stages]] name = "rand_augment", ...
struct RandAugmentOptions {
  int ops = 2;                   // operations per sample, drawn with replacement (1..12)
  double magnitude = 10.0;       // on the 0..10 scale
  bool random_magnitude = true;  // draw m in [0, magnitude] per op (RandAugmentMC)
  double cutout = 0.5;           // final cutout side as a fraction of min(h, w); 0: none

  /// Reads and validates every key (defaults, ranges and docs in one place).
  static RandAugmentOptions read(Options& options);
};

class RandAugmentStage final : public Stage {
 public:
  explicit RandAugmentStage(const RandAugmentOptions& options) : options_(options) {}
  explicit RandAugmentStage(Options& options) : options_(RandAugmentOptions::read(options)) {}
  void apply(ImageView image, SampleRng& rng) const override;

 private:
  RandAugmentOptions options_;
};

}  // namespace pretext::stages
