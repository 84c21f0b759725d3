// Tests for PNG/JPEG decoding, channel conversion and resizing
// (data/image_decode.hpp). Every image is written by the test itself.
#include "data/image_decode.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "support/synthetic_idx.hpp"
#include "support/test_images.hpp"

namespace pretext::data {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

class ImageDecode : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_dir("image-decode"); }
  void TearDown() override { fs::remove_all(dir_); }

  Bytes decode(const fs::path& file, int channels, int size) {
    Bytes out(static_cast<std::size_t>(channels * size * size));
    decode_image_file(file, DecodeTarget{channels, size}, out.data());
    return out;
  }

  fs::path dir_;
};

// Interleaved RGB -> planar CHW, the layout every decoded image has.
Bytes planar(const Bytes& interleaved, std::size_t pixels) {
  Bytes out(interleaved.size());
  for (std::size_t i = 0; i < pixels; ++i)
    for (std::size_t c = 0; c < 3; ++c) out[c * pixels + i] = interleaved[i * 3 + c];
  return out;
}

Bytes ramp(std::size_t n, int step) {
  Bytes v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((static_cast<int>(i) * step + 7) % 256);
  return v;
}

TEST_F(ImageDecode, GreyPngAtItsOwnSizeIsExact) {
  const Bytes values = ramp(16, 13);
  testing::write_grey_png(dir_ / "g.png", 4, 4, values);
  EXPECT_EQ(decode(dir_ / "g.png", 1, 4), values);
}

TEST_F(ImageDecode, RgbPngBecomesPlanar) {
  const Bytes rgb = ramp(3 * 3 * 3, 11);
  testing::write_png(dir_ / "square.png", {3, 3, PNG_COLOR_TYPE_RGB, 8, rgb, {}});
  EXPECT_EQ(decode(dir_ / "square.png", 3, 3), planar(rgb, 9));
}

TEST_F(ImageDecode, RgbaPngDropsAlphaAndKeepsTheStoredColour) {
  const Bytes rgba = {10, 20, 30, 255, 40, 50, 60, 0, 70, 80, 90, 128, 100, 110, 120, 1};
  testing::write_png(dir_ / "a.png", {2, 2, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, {}});
  EXPECT_EQ(decode(dir_ / "a.png", 3, 2), planar({10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120}, 4));
}

TEST_F(ImageDecode, GreyAlphaPngDropsAlpha) {
  testing::write_png(dir_ / "ga.png", {2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {33, 0, 99, 255}, {}});
  const auto image = decode_image(testing::read_bytes(dir_ / "ga.png"), "ga.png");
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, (Bytes{33, 99}));
}

TEST_F(ImageDecode, PalettePngIsExpandedToRgb) {
  const std::vector<png_color> palette = {{255, 0, 0}, {0, 200, 0}, {1, 2, 3}};
  testing::write_png(dir_ / "p.png", {2, 2, PNG_COLOR_TYPE_PALETTE, 8, {0, 1, 2, 1}, palette});
  EXPECT_EQ(decode(dir_ / "p.png", 3, 2), planar({255, 0, 0, 0, 200, 0, 1, 2, 3, 0, 200, 0}, 4));
}

TEST_F(ImageDecode, SixteenBitPngKeepsTheHighByte) {
  // Big-endian 16-bit grey: 0x12ff -> 0x12, 0xab01 -> 0xab.
  testing::write_png(dir_ / "16.png", {2, 1, PNG_COLOR_TYPE_GRAY, 16, {0x12, 0xff, 0xab, 0x01}, {}});
  const auto image = decode_image(testing::read_bytes(dir_ / "16.png"), "16.png");
  EXPECT_EQ(image.pixels, (Bytes{0x12, 0xab}));
}

TEST_F(ImageDecode, RgbToGreyUsesRec601Luma) {
  testing::write_png(dir_ / "rgb.png", {3, 1, PNG_COLOR_TYPE_RGB, 8, {255, 0, 0, 0, 255, 0, 0, 0, 255}, {}});
  const auto image = decode_image(testing::read_bytes(dir_ / "rgb.png"), "rgb.png");
  Bytes out(1);
  // A 1-pixel target of a single column: crop the centre pixel (green).
  InterleavedImage red{1, 1, 3, {255, 0, 0}};
  InterleavedImage green{1, 1, 3, {0, 255, 0}};
  InterleavedImage blue{1, 1, 3, {0, 0, 255}};
  resize_to_target(red, {1, 1}, out.data());
  EXPECT_EQ(out[0], 76);  // 0.299 * 255
  resize_to_target(green, {1, 1}, out.data());
  EXPECT_EQ(out[0], 150);  // 0.587 * 255
  resize_to_target(blue, {1, 1}, out.data());
  EXPECT_EQ(out[0], 29);  // 0.114 * 255
  resize_to_target(image, {1, 1}, out.data());
  EXPECT_EQ(out[0], 150);  // the centre crop of a 3x1 image is its middle pixel
}

TEST_F(ImageDecode, GreyToRgbReplicates) {
  Bytes out(3 * 4);
  resize_to_target({2, 2, 1, {1, 2, 3, 4}}, {3, 2}, out.data());
  EXPECT_EQ(out, (Bytes{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}));
}

TEST_F(ImageDecode, DownscalingCropsTheCentreAndAveragesAreas) {
  // 8 wide, 4 high: the centre 4x4 is columns 2..5; 2x2 blocks are averaged.
  Bytes grey(32);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x) grey[static_cast<std::size_t>(y * 8 + x)] = static_cast<std::uint8_t>(10 * x + y);
  Bytes out(4);
  resize_to_target({8, 4, 1, grey}, {1, 2}, out.data());
  // Block (0,0): x 2,3 and y 0,1 -> mean of 20,30,21,31 = 25.5 -> 26 (rounded).
  EXPECT_EQ(out, (Bytes{26, 46, 28, 48}));
}

TEST_F(ImageDecode, DownscalingByThreeAveragesWholeBlocks) {
  // 10 x^2 + y: the mean of a 3x3 block is not its centre value (bilinear would give that).
  Bytes grey(36);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) grey[static_cast<std::size_t>(y * 6 + x)] = static_cast<std::uint8_t>(10 * x * x + y);
  Bytes out(4);
  resize_to_target({6, 6, 1, grey}, {1, 2}, out.data());
  EXPECT_EQ(out, (Bytes{18, 168, 21, 171}));  // (0 + 10 + 40) / 3 + 1 = 17.67, ...
}

TEST_F(ImageDecode, UpscalingIsBilinearWithAlignedCentres) {
  Bytes out(16);
  resize_to_target({2, 2, 1, {0, 100, 0, 100}}, {1, 4}, out.data());
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 4), (Bytes{0, 25, 75, 100}));
}

TEST_F(ImageDecode, JpegGreyAndRgbDecodeClose) {
  testing::write_jpeg(dir_ / "g.jpg", 8, 8, 1, Bytes(64, 100));
  for (auto v : decode(dir_ / "g.jpg", 1, 8)) EXPECT_NEAR(v, 100, 2);
  Bytes rgb;
  for (int i = 0; i < 64; ++i) rgb.insert(rgb.end(), {200, 40, 90});
  testing::write_jpeg(dir_ / "c.JPEG", 8, 8, 3, rgb);
  const Bytes out = decode(dir_ / "c.JPEG", 3, 4);
  for (std::size_t i = 0; i < 16; ++i) {
    EXPECT_NEAR(out[i], 200, 4);
    EXPECT_NEAR(out[16 + i], 40, 4);
    EXPECT_NEAR(out[32 + i], 90, 4);
  }
}

TEST_F(ImageDecode, CmykJpegIsRefusedByName) {
  testing::write_jpeg(dir_ / "cmyk.jpg", 8, 8, 4, Bytes(256, 50));
  try {
    decode(dir_ / "cmyk.jpg", 3, 8);
    FAIL() << "a CMYK JPEG was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cmyk.jpg"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("CMYK"), std::string::npos) << e.what();
  }
}

void expect_input_error(const std::function<void()>& load, const std::string& file, const std::string& what) {
  try {
    load();
    FAIL() << file << " was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST_F(ImageDecode, TruncatedAndCorruptFilesAreInputErrorsNamingTheFile) {
  testing::write_grey_png(dir_ / "cut.png", 16, 16, ramp(256, 3));
  testing::truncate_to_half(dir_ / "cut.png");
  expect_input_error([&] { decode(dir_ / "cut.png", 1, 8); }, "cut.png", "PNG");

  testing::write_jpeg(dir_ / "cut.jpg", 64, 64, 1, ramp(4096, 37));  // mostly scan data: the cut is inside it
  testing::truncate_to_half(dir_ / "cut.jpg");
  expect_input_error([&] { decode(dir_ / "cut.jpg", 1, 8); }, "cut.jpg", "JPEG");

  testing::write_grey_png(dir_ / "flipped.png", 16, 16, ramp(256, 3));
  Bytes bytes = testing::read_bytes(dir_ / "flipped.png");
  for (std::size_t i = 40; i < bytes.size() - 20; ++i) bytes[i] ^= 0x5a;  // IDAT payload and CRC
  testing::write_bytes(dir_ / "flipped.png", bytes);
  expect_input_error([&] { decode(dir_ / "flipped.png", 1, 8); }, "flipped.png", "bad PNG");

  testing::write_bytes(dir_ / "text.png", Bytes{'h', 'e', 'l', 'l', 'o'});
  expect_input_error([&] { decode(dir_ / "text.png", 1, 8); }, "text.png", "expected a PNG or JPEG");
}

// A small valid file whose header is rewritten to declare width x height.
Bytes jpeg_declaring(const fs::path& dir, std::uint16_t width, std::uint16_t height) {
  testing::write_jpeg(dir / "small.jpg", 8, 8, 3, ramp(192, 5));
  Bytes bytes = testing::read_bytes(dir / "small.jpg");
  for (std::size_t i = 2; i + 9 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC0) {  // SOF0: length, precision, height, width
      bytes[i + 5] = static_cast<std::uint8_t>(height >> 8);
      bytes[i + 6] = static_cast<std::uint8_t>(height);
      bytes[i + 7] = static_cast<std::uint8_t>(width >> 8);
      bytes[i + 8] = static_cast<std::uint8_t>(width);
      return bytes;
    }
  }
  ADD_FAILURE() << "no SOF0 marker";
  return bytes;
}

Bytes png_declaring(const fs::path& dir, std::uint32_t width, std::uint32_t height) {
  testing::write_png(dir / "small.png", testing::PngSpec{2, 2, PNG_COLOR_TYPE_RGB, 8, ramp(12, 9), {}});
  Bytes bytes = testing::read_bytes(dir / "small.png");
  for (int i = 0; i < 4; ++i) {  // IHDR data starts at byte 16: width, then height, big-endian
    bytes[16 + i] = static_cast<std::uint8_t>(width >> (24 - 8 * i));
    bytes[20 + i] = static_cast<std::uint8_t>(height >> (24 - 8 * i));
  }
  const uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes.data() + 12, 17);  // "IHDR" and its 13 bytes
  for (int i = 0; i < 4; ++i) bytes[29 + i] = static_cast<std::uint8_t>(crc >> (24 - 8 * i));
  return bytes;
}

// Found by fuzz/image_decode_fuzz.cpp (tests/fuzz/corpus/image_decode/crash-jpeg-65390x65279):
// a 448-byte JPEG declaring 65390x65279 made the decoder allocate 12.8 GB
// before reading any scan data. Headers over kMaxImagePixels are refused
// first, and a PNG whose scanlines cannot fit in the file is refused too.
TEST_F(ImageDecode, HeadersDeclaringHugeImagesAreRefusedBeforeAllocating) {
  const auto refused = [](const Bytes& bytes, const std::string& what) {
    expect_input_error([&] { decode_image(bytes, "huge.img"); }, "huge.img", what);
  };
  refused(jpeg_declaring(dir_, 65500, 65500), "declares 65500x65500 pixels, more than the 67108864");
  refused(jpeg_declaring(dir_, 9000, 9000), "bad JPEG: the header declares 9000x9000");
  refused(png_declaring(dir_, 1000000, 1000000), "bad PNG: the header declares 1000000x1000000");
  refused(png_declaring(dir_, 8000, 8000), "more than a");  // under the limit, but 8000 rows cannot fit in ~70 bytes
  // The limits leave real images alone: the same files at their true size decode.
  EXPECT_EQ(decode_image(jpeg_declaring(dir_, 8, 8), "small.jpg").width, 8);
  EXPECT_EQ(decode_image(png_declaring(dir_, 2, 2), "small.png").height, 2);
}

}  // namespace
}  // namespace pretext::data
