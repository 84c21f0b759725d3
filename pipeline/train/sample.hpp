// Generated images as a PNG grid: after every pretext epoch of a generating
// task (samples-epoch-N.png), and from a finished run (`pretext sample`).
#pragma once

#include <cstdint>
#include <filesystem>

#include "pretext/sdk.hpp"

namespace pretext {

/// An 8 x 8 grid: what a run writes after each epoch.
inline constexpr std::int64_t kSampleGridCount = 64;

/// Draws `count` images from `sampler` and writes them to `png`, 8 per row.
void write_sample_grid(Sampler& sampler, std::int64_t count, const std::filesystem::path& png);

/// `pretext sample`: rebuilds the run in `run_dir` from its config.toml and
/// model.toml (its data is not read, and may be gone), restores the task from
/// pretext.pt and writes `count` generated images to `png`. InputError when
/// the task does not generate or the run has no pretext.pt.
void sample_from_run(const std::filesystem::path& run_dir, std::int64_t count, const std::filesystem::path& png);

}  // namespace pretext
