// Writes the fuzzers' seed corpus: tests/fuzz/corpus/<target>/, small valid
// files and a few near-valid ones (cut, wrong magic, a bad value), made with
// the same writers the tests use. The output is checked in; rerun this only
// to change the seeds:
//
//   cmake --build build-fuzz --target pretext_fuzz_make_corpus
//   build-fuzz/fuzz/pretext_fuzz_make_corpus tests/fuzz/corpus
//
// Crash inputs that the fuzzers found are added to the corpus by hand (named
// crash-*), next to their regression tests; this program leaves them alone.
#include <matio.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/image_set.hpp"
#include "data/packed.hpp"
#include "tests/support/synthetic_idx.hpp"
#include "tests/support/test_images.hpp"

namespace fs = std::filesystem;
using pretext::testing::read_bytes;
using pretext::testing::write_bytes;

namespace {

void write_text(const fs::path& file, const std::string& text) {
  write_bytes(file, std::vector<std::uint8_t>(text.begin(), text.end()));
}

std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw) {
  const fs::path temporary = fs::temp_directory_path() / "pretext-make-corpus.gz";
  gzFile out = gzopen(temporary.c_str(), "wb9");
  if (out == nullptr || gzwrite(out, raw.data(), static_cast<unsigned>(raw.size())) != static_cast<int>(raw.size()))
    throw std::runtime_error("gzip failed");
  gzclose(out);
  auto bytes = read_bytes(temporary);
  fs::remove(temporary);
  return bytes;
}

std::vector<std::uint8_t> concat(std::vector<std::uint8_t> a, const std::string& b,
                                 const std::vector<std::uint8_t>& c) {
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  return a;
}

// ---- config: TOML text, optionally "\0" and --set lines -------------------

void write_config_seeds(const fs::path& dir) {
  write_text(dir / "minimal.toml", "[data]\nsource = \"idx\"\npath = \"train-images-idx3-ubyte\"\n");
  write_text(dir / "full.toml", R"(seed = 7
threads = 2
[data]
source = "folder"
path = "images/"
test_path = "test-images/"
labelled = 40
validation = 20
unlabelled = 0
image_size = 16
channels = 1
on_bad_image = "skip"
labelled_layout = false
[pipeline]
threads = 1
block_size = 8
max_blocks_in_flight = 4
max_batches_in_flight = 3
[trainer]
device = "cpu"
memory_format = "contiguous"
autocast = "bf16"
eval_batch_size = 64
check_gradients = false
[plugins]
search_path = ["plugins", "more"]
[model]
plugin = "conv4"
width = 32
norm = true
[pretext]
plugin = "rotation"
epochs = 2
batch_size = 16
optimizer = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4
[pretext.loss]
plugin = "cross_entropy"
[[pretext.stages]]
name = "flip"
p = 0.5
[[pretext.stages]]
name = "crop"
padding = 4
[transfer]
modes = ["fixed", "scratch"]
epochs = 3
lr_schedule = "cosine"
head_lr = 0.01
frozen_epochs = 1
stages = [{name = "flip"}]
[evaluation]
knn = true
knn_k = 5
knn_features = "avg_pool"
linear_probe_l2 = 0.5
random_init = false
[checkpoint]
every_steps = 0
keep = 3
)");
  write_text(dir / "packed.toml",
             "[data]\nsource = 'packed'\npath = 'train.pack'\nverify_checksum = false\naccess = 'stream'\n"
             "pad_to = 0\n[transfer]\nmodes = []\n");
  write_text(dir / "svhn.toml", "data.source = \"svhn_mat\"\ndata.path = \"train_32x32.mat\"\ndata.pad_to = 32\n");
  // Near-valid: each one is refused with a ConfigError.
  write_text(dir / "typo.toml", "[transfer]\nepohcs = 3\n");
  write_text(dir / "wrong-type.toml", "[pretext]\nlr = \"fast\"\n");
  write_text(dir / "out-of-range.toml", "[data]\nlabelled = 0\nchannels = 2\nsource = \"folder\"\npath = \"x\"\n");
  write_text(dir / "not-a-table.toml", "data = 3\n");
  write_text(dir / "bad-syntax.toml", "[data\npath = \n");
  const std::string valid = "[data]\npath = \"a\"\n[[transfer.stages]]\nname = \"flip\"\n";
  write_text(dir / "overrides.toml", valid + std::string(1, '\0') +
                                         "transfer.epochs=2\ndata.path=/tmp/x y\ntransfer.modes=[\"fixed\"]\n"
                                         "model.width=16\ntransfer.stages[0].p=0.25");
  write_text(dir / "bad-override.toml", valid + std::string(1, '\0') + "pretext.stages[0].name=flip");
}

// ---- idx: an image file, optionally "\nLABELS\n" and a label file ---------

void write_idx_seeds(const fs::path& dir) {
  const fs::path scratch = pretext::testing::fresh_temp_dir("make-corpus-idx");
  const auto files = pretext::testing::write_synthetic_idx(scratch, "seed", 3, 5, 2, 1);
  const auto images = read_bytes(files.images);
  const auto labels = read_bytes(files.labels);
  fs::remove_all(scratch);
  write_bytes(dir / "images-raw", images);
  write_bytes(dir / "images-gzip", gzip(images));
  write_bytes(dir / "pair-raw", concat(images, "\nLABELS\n", labels));
  write_bytes(dir / "pair-gzip", concat(gzip(images), "\nLABELS\n", gzip(labels)));
  // Near-valid: cut images, labels where images belong, a count mismatch.
  write_bytes(dir / "images-cut", std::vector<std::uint8_t>(images.begin(), images.begin() + 30));
  write_bytes(dir / "labels-as-images", labels);
  auto short_labels = labels;
  short_labels.pop_back();
  short_labels[7] = 2;
  write_bytes(dir / "pair-count-mismatch", concat(images, "\nLABELS\n", short_labels));
}

// ---- image_decode: PNG and JPEG files -------------------------------------

void write_image_seeds(const fs::path& dir) {
  using pretext::testing::PngSpec;
  std::vector<std::uint8_t> rgb(5 * 3 * 3), grey(5 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>(i * 17);
  for (std::size_t i = 0; i < grey.size(); ++i) grey[i] = static_cast<std::uint8_t>(i * 16);
  pretext::testing::write_png(dir / "rgb.png", PngSpec{5, 3, PNG_COLOR_TYPE_RGB, 8, rgb, {}});
  pretext::testing::write_png(dir / "grey.png", PngSpec{5, 3, PNG_COLOR_TYPE_GRAY, 8, grey, {}});
  // 1-bit grey: one byte per row holds 5 pixels.
  pretext::testing::write_png(dir / "grey-1bit.png", PngSpec{5, 3, PNG_COLOR_TYPE_GRAY, 1, {0xA8, 0x50, 0xF8}, {}});
  pretext::testing::write_png(dir / "palette.png",
                              PngSpec{2, 2, PNG_COLOR_TYPE_PALETTE, 8, {0, 1, 1, 0}, {{255, 0, 0}, {0, 0, 255}}});
  // 16-bit RGBA: 2x1, big-endian samples.
  pretext::testing::write_png(
      dir / "rgba16.png",
      PngSpec{2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {}});
  pretext::testing::write_png(dir / "grey-alpha.png",
                              PngSpec{2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {10, 255, 20, 0}, {}});
  pretext::testing::write_jpeg(dir / "rgb.jpg", 5, 3, 3, rgb);
  pretext::testing::write_jpeg(dir / "grey.jpg", 5, 3, 1, grey);
  pretext::testing::write_jpeg(dir / "cmyk.jpg", 2, 2, 4, std::vector<std::uint8_t>(16, 100));
  // Near-valid: cut files.
  auto png = read_bytes(dir / "rgb.png");
  png.resize(png.size() - 20);
  write_bytes(dir / "rgb-cut.png", png);
  auto jpeg = read_bytes(dir / "rgb.jpg");
  jpeg.resize(jpeg.size() / 2);
  write_bytes(dir / "rgb-cut.jpg", jpeg);
}

// ---- packed ---------------------------------------------------------------

void write_packed_seeds(const fs::path& dir) {
  pretext::data::ImageSet set;
  set.shape = pretext::ImageShape{3, 4, 4};
  set.labels = {0, 1};
  set.pixels.resize(2 * set.shape.numel());
  for (std::size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = static_cast<std::uint8_t>(i * 7);
  pretext::data::write_packed(dir / "two-rgb-with-classes.pack", set, {"cat", "dog"});
  set.shape = pretext::ImageShape{1, 2, 3};
  set.labels = {-1, -1, -1};
  set.pixels.assign(3 * set.shape.numel(), 9);
  pretext::data::write_packed(dir / "three-grey-no-classes.pack", set, {});
  auto cut = read_bytes(dir / "two-rgb-with-classes.pack");
  cut.resize(cut.size() - 10);
  write_bytes(dir / "cut.pack", cut);
}

// ---- svhn_mat: MATLAB v5 and v7.3 -----------------------------------------

bool write_svhn(const fs::path& file, std::size_t count, std::vector<double> labels, mat_ft version,
                matio_compression compression) {
  mat_t* mat = Mat_CreateVer(file.c_str(), nullptr, version);
  if (mat == nullptr) return false;
  std::vector<std::uint8_t> x(count * 32 * 32 * 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::uint8_t>(i % 251);
  std::size_t x_dims[4] = {32, 32, 3, count};
  std::size_t y_dims[2] = {labels.size(), 1};
  matvar_t* xv =
      Mat_VarCreate("X", MAT_C_UINT8, MAT_T_UINT8, count == 1 ? 3 : 4, x_dims, x.data(), MAT_F_DONT_COPY_DATA);
  matvar_t* yv = Mat_VarCreate("y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, y_dims, labels.data(), MAT_F_DONT_COPY_DATA);
  const bool ok = Mat_VarWrite(mat, xv, compression) == 0 && Mat_VarWrite(mat, yv, compression) == 0;
  Mat_VarFree(xv);
  Mat_VarFree(yv);
  Mat_Close(mat);
  return ok;
}

void write_svhn_seeds(const fs::path& dir) {
  write_svhn(dir / "v5-one.mat", 1, {10}, MAT_FT_MAT5, MAT_COMPRESSION_NONE);
  write_svhn(dir / "v5-zlib-two.mat", 2, {3, 10}, MAT_FT_MAT5, MAT_COMPRESSION_ZLIB);
  write_svhn(dir / "v5-label-out-of-range.mat", 1, {11}, MAT_FT_MAT5, MAT_COMPRESSION_ZLIB);
  write_svhn(dir / "v5-count-mismatch.mat", 2, {1}, MAT_FT_MAT5, MAT_COMPRESSION_ZLIB);
  if (!write_svhn(dir / "v73-one.mat", 1, {4}, MAT_FT_MAT73, MAT_COMPRESSION_ZLIB))
    std::cerr << "matio has no v7.3 (HDF5) support here: no v7.3 seed\n";
  auto cut = read_bytes(dir / "v5-one.mat");
  cut.resize(cut.size() - 100);
  write_bytes(dir / "v5-cut.mat", cut);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR (e.g. tests/fuzz/corpus)\n";
    return 2;
  }
  const fs::path root = argv[1];
  const struct {
    const char* target;
    void (*write)(const fs::path&);
  } seeds[] = {{"config", write_config_seeds},
               {"idx", write_idx_seeds},
               {"image_decode", write_image_seeds},
               {"packed", write_packed_seeds},
               {"svhn_mat", write_svhn_seeds}};
  for (const auto& seed : seeds) {
    fs::create_directories(root / seed.target);
    seed.write(root / seed.target);
    std::cout << "wrote " << (root / seed.target).string() << "\n";
  }
  return 0;
}
