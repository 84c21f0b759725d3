// What a config's [data] section says: where the images are, how they are
// read and how they are split. A plain struct, so data/ stays below the config
// layer: pipeline/config/run_options.cpp fills and validates it.
#pragma once

#include <cstdint>
#include <string>

namespace pretext::data {

struct DataOptions {
  std::string source = "idx";  // idx | svhn_mat | folder | packed
  std::string path;            // training file (labelled + validation + unlabelled come from it)
  std::string test_path;       // evaluated separately
  std::string labels_path;     // idx only; derived from path when empty
  std::string test_labels_path;
  std::int64_t labelled = 500;
  std::int64_t validation = 2000;
  std::int64_t unlabelled = 0;  // 0: all the rest
  std::string labelled_draw = "random";  // random (the study's) | per_class (data/split.hpp)
  std::int64_t pad_to = 32;     // 0: keep the file's size
  // folder only: what each image is decoded to, and what a bad file does
  std::int64_t image_size = 32;
  std::int64_t channels = 3;
  std::string on_bad_image = "fail";  // fail | skip
  bool labelled_layout = true;        // one sub-folder per class; false: any tree, labels -1
  // packed only
  bool verify_checksum = true;
  std::string access = "mmap";  // mmap | stream
};

}  // namespace pretext::data
