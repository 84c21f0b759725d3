// `pretext preprocess`: a config's training data, decoded once, sized as
// training wants it, written as a packed file that later runs map in place.
#pragma once

#include <cstddef>
#include <filesystem>
#include <ostream>

#include "data/data_options.hpp"
#include "data/image_set.hpp"

namespace pretext::data {

struct PreprocessResult {
  std::size_t images = 0;
  std::size_t skipped = 0;
  double seconds = 0.0;  // load/decode, padding and writing
};

/// Loads data.path as data.source says (folders decode on all cores with
/// oneTBB), pads to data.pad_to, writes `out` atomically. Progress and
/// throughput go to `log`. Throws InputError naming the file.
///
/// With a shard I/N only images [I*n/N, (I+1)*n/N) of data.path's n are
/// packed (a folder decodes only those), so N hosts can each pack one part;
/// the N files, read as one glob (read_packed_files), are the unsharded file.
PreprocessResult preprocess_to_packed(const DataOptions& d, const std::filesystem::path& out, std::ostream& log,
                                      const Shard& shard = {});

}  // namespace pretext::data
