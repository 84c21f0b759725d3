// The study's split protocol: from the training file, `labelled` and
// `validation` images are drawn with the seed; the rest are unlabelled (or
// the first `unlabelled` of them when that is above 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pretext::data {

struct Split {
  std::vector<std::uint32_t> labelled;
  std::vector<std::uint32_t> validation;
  std::vector<std::uint32_t> unlabelled;
};

/// Throws InputError (naming `origin`) when the sizes do not fit in `total`.
Split split_indices(std::size_t total, std::int64_t labelled, std::int64_t validation, std::int64_t unlabelled,
                    std::uint64_t seed, const std::string& origin);

}  // namespace pretext::data
