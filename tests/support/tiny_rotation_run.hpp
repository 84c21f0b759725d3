// The tiny rotation run that the resume and disk-fault tests interrupt:
// 200 synthetic 16x16 training images (120 unlabelled, 4 rotations each,
// batches of 32: 15 steps an epoch), 40 test images, two pretext epochs.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "synthetic_idx.hpp"

namespace pretext::testing {

/// Writes the data and DIR/tiny.toml; `extra_pretext` is appended to its
/// [pretext] section. Returns the config's path.
inline std::filesystem::path write_tiny_rotation_run(const std::filesystem::path& dir,
                                                     const std::string& extra_pretext = "") {
  const auto train = write_synthetic_idx(dir, "train", 200, 16, 4, 1);
  const auto test = write_synthetic_idx(dir, "test", 40, 16, 4, 2);
  const auto config = dir / "tiny.toml";
  std::ofstream(config) << "seed = 5\nthreads = 2\n"
                        << "[data]\nsource = \"idx\"\npath = \"" << train.images.string() << "\"\n"
                        << "test_path = \"" << test.images.string() << "\"\n"
                        << "labelled = 40\nvalidation = 40\npad_to = 16\n"
                        << "[pipeline]\nthreads = 2\n"
                        << "[trainer]\nautocast = \"none\"\n"
                        << "[model]\nplugin = \"conv4\"\nwidth = 4\n"
                        << "[pretext]\nplugin = \"rotation\"\nepochs = 2\nbatch_size = 32\nlr = 0.003\n"
                        << extra_pretext << "[transfer]\nmodes = [\"finetuned\"]\nepochs = 1\nbatch_size = 16\n"
                        << "[evaluation]\nlinear_probe_iterations = 10\nrandom_init = false\n";
  return config;
}

}  // namespace pretext::testing
