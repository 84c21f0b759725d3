#include "data/split.hpp"

#include <numeric>

#include "common/errors.hpp"
#include "pretext/image.hpp"

namespace pretext::data {
namespace {

void check_sizes(std::size_t total, std::int64_t labelled, std::int64_t validation, std::int64_t unlabelled,
                 const std::string& origin) {
  const auto fixed = static_cast<std::size_t>(labelled + validation);
  if (labelled <= 0 || validation <= 0 || fixed > total)
    throw InputError("data.labelled (" + std::to_string(labelled) + ") + data.validation (" +
                     std::to_string(validation) + ") must be positive and fit in the " + std::to_string(total) +
                     " images of " + origin);
  const std::size_t rest = total - fixed;
  if (unlabelled < 0 || static_cast<std::size_t>(unlabelled) > rest)
    throw InputError("data.unlabelled (" + std::to_string(unlabelled) + ") exceeds the " + std::to_string(rest) +
                     " images left in " + origin + " after the labelled and validation images");
}

/// 0..total-1 in the seed's Fisher-Yates order: both draws start from it, so
/// they differ only in which images become labelled.
std::vector<std::uint32_t> seeded_order(std::size_t total, std::uint64_t seed) {
  std::vector<std::uint32_t> order(total);
  std::iota(order.begin(), order.end(), 0U);
  SampleRng rng(seed, 0, 0, 0, /*purpose=*/0x5EED5B17);
  for (std::size_t i = total; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

/// [first, last) in order gives the validation images, then the unlabelled ones.
void fill_validation_and_unlabelled(Split& split, std::vector<std::uint32_t>::const_iterator first,
                                    std::vector<std::uint32_t>::const_iterator last, std::int64_t validation,
                                    std::int64_t unlabelled) {
  const auto first_unlabelled = first + validation;
  split.validation.assign(first, first_unlabelled);
  const std::ptrdiff_t take = unlabelled > 0 ? unlabelled : last - first_unlabelled;
  split.unlabelled.assign(first_unlabelled, first_unlabelled + take);
}

}  // namespace

Split split_indices(std::size_t total, std::int64_t labelled, std::int64_t validation, std::int64_t unlabelled,
                    std::uint64_t seed, const std::string& origin) {
  check_sizes(total, labelled, validation, unlabelled, origin);
  const std::vector<std::uint32_t> order = seeded_order(total, seed);
  Split split;
  split.labelled.assign(order.begin(), order.begin() + labelled);
  fill_validation_and_unlabelled(split, order.begin() + labelled, order.end(), validation, unlabelled);
  return split;
}

Split split_indices_per_class(const std::vector<Label>& labels, std::int64_t classes, std::int64_t labelled,
                              std::int64_t validation, std::int64_t unlabelled, std::uint64_t seed,
                              const std::string& origin) {
  check_sizes(labels.size(), labelled, validation, unlabelled, origin);
  if (classes < 1) throw InputError(origin + ": a per-class labelled draw needs labelled images, found none");
  const auto need = [&](std::int64_t c) { return labelled / classes + (c < labelled % classes ? 1 : 0); };
  std::vector<std::int64_t> quota(static_cast<std::size_t>(classes));
  for (std::int64_t c = 0; c < classes; ++c) quota[static_cast<std::size_t>(c)] = need(c);

  const std::vector<std::uint32_t> order = seeded_order(labels.size(), seed);
  Split split;
  std::vector<std::uint32_t> rest;
  rest.reserve(order.size());
  for (const std::uint32_t i : order) {
    const Label label = labels[i];
    if (label >= 0 && label < classes && quota[static_cast<std::size_t>(label)] > 0) {
      --quota[static_cast<std::size_t>(label)];
      split.labelled.push_back(i);
    } else {
      rest.push_back(i);
    }
  }
  for (std::int64_t c = 0; c < classes; ++c)
    if (const std::int64_t missing = quota[static_cast<std::size_t>(c)]; missing > 0)
      throw InputError(origin + ": data.labelled_draw = \"per_class\" needs " + std::to_string(need(c)) +
                       " labelled images of class " + std::to_string(c) + ", but the file holds " +
                       std::to_string(need(c) - missing) +
                       "; expected a smaller data.labelled, or data.labelled_draw = \"random\"");
  fill_validation_and_unlabelled(split, rest.begin(), rest.end(), validation, unlabelled);
  return split;
}

}  // namespace pretext::data
