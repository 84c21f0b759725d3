// write_synthetic_idx DIR COUNT: a tiny synthetic IDX dataset for tests that
// drive the `pretext` executable from a script (the SDK install test).
#include <cstdlib>
#include <iostream>

#include "synthetic_idx.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: write_synthetic_idx DIR COUNT\n";
    return 2;
  }
  const int count = std::atoi(argv[2]);
  const auto files = pretext::testing::write_synthetic_idx(argv[1], "train", count, 16, 4, 7);
  std::cout << files.images.string() << '\n' << files.labels.string() << '\n';
  return 0;
}
