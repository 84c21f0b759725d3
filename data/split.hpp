// The study's split protocol: from the training file, `labelled` and
// `validation` images are drawn with the seed; the rest are unlabelled (or
// the first `unlabelled` of them when that is above 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image_set.hpp"

namespace pretext::data {

struct Split {
  std::vector<std::uint32_t> labelled;
  std::vector<std::uint32_t> validation;
  std::vector<std::uint32_t> unlabelled;
};

/// Uniform draw: the labelled images are the first `labelled` of a seeded
/// shuffle, the validation images the next `validation`.
/// Throws InputError (naming `origin`) when the sizes do not fit in `total`.
Split split_indices(std::size_t total, std::int64_t labelled, std::int64_t validation, std::int64_t unlabelled,
                    std::uint64_t seed, const std::string& origin);

/// Per-class draw, as FixMatch and its successors draw their labelled sets:
/// the same seeded shuffle, but an image joins the labelled set only while
/// its class is short of its quota, labelled / classes (the first
/// labelled % classes classes one more). Validation and unlabelled images
/// then follow the shuffle as in split_indices, so they are drawn uniformly.
/// A uniform draw of 500 from Fashion-MNIST's ten classes holds 33 to 70 of
/// a class (seeds 0-9); this removes that variance from the labelled set.
/// Throws InputError (naming `origin` and the class) when a class has fewer
/// labelled images in `labels` than its quota; images labelled -1 (unknown)
/// are never drawn as labelled.
Split split_indices_per_class(const std::vector<Label>& labels, std::int64_t classes, std::int64_t labelled,
                              std::int64_t validation, std::int64_t unlabelled, std::uint64_t seed,
                              const std::string& origin);

}  // namespace pretext::data
