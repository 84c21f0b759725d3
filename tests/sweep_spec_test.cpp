// Sweep files: parsing, list and grid expansion, labels, and errors with positions.
#include "pipeline/sweep/sweep_spec.hpp"

#include <gtest/gtest.h>

#include "common/errors.hpp"

namespace pretext::sweep {
namespace {

SweepSpec parse(const std::string& text) { return parse_sweep_spec(text, "/studies/s.toml"); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(SweepSpec, ListOfVariantsWithLabelsAndOverrides) {
  const auto spec = parse(R"(
title = "Batch size"
base = "../base.toml"
chart_mode = "finetuned"
set = { "pretext.epochs" = 1, transfer = { modes = ["finetuned"] } }
[[variants]]
label = "batch 32"
set = { "transfer.batch_size" = 32 }
[[variants]]
label = "Batch 64!"
set = { transfer.batch_size = 64, "transfer.stages" = [{ name = "color_jitter", brightness = 0.2 }] }
)");
  EXPECT_EQ(spec.base, std::filesystem::path("/studies/../base.toml"));
  EXPECT_EQ(spec.title, "Batch size");
  EXPECT_EQ(spec.chart_mode, "finetuned");
  EXPECT_EQ(spec.common, (std::vector<std::string>{"pretext.epochs=1", "transfer.modes=[ \"finetuned\" ]"}));
  ASSERT_EQ(spec.variants.size(), 2U);
  EXPECT_EQ(spec.variants[0].study, "Batch size");
  EXPECT_EQ(spec.variants[0].label, "batch 32");
  EXPECT_EQ(spec.variants[0].slug, "batch-32");
  EXPECT_EQ(spec.variants[0].overrides, (std::vector<std::string>{"transfer.batch_size=32"}));
  EXPECT_EQ(spec.variants[1].slug, "batch-64");
  ASSERT_EQ(spec.variants[1].overrides.size(), 2U);
  EXPECT_EQ(spec.variants[1].overrides[0], "transfer.batch_size=64");
  EXPECT_EQ(spec.variants[1].overrides[1].rfind("transfer.stages=[", 0), 0U) << spec.variants[1].overrides[1];
  EXPECT_NE(spec.variants[1].overrides[1].find("brightness = 0.2"), std::string::npos);
  EXPECT_EQ(spec.variants[1].overrides[1].find('\n'), std::string::npos);
}

TEST(SweepSpec, GridIsTheProductOfItsAxesInFileOrder) {
  const auto spec = parse(R"(
base = "b.toml"
[[studies]]
name = "lr x dropout"
set = { "transfer.epochs" = 5 }
grid = { "transfer.lr" = [0.001, 0.0005], "model.dropout" = [0.0, 0.3, 0.5] }
[[studies]]
name = "activation"
variants = [{ label = "relu", set = { "model.activation" = "relu" } },
            { label = "leaky", set = { "model.activation" = "leaky_relu" } }]
)");
  ASSERT_EQ(spec.variants.size(), 8U);
  EXPECT_EQ(spec.variants[0].study, "lr x dropout");
  EXPECT_EQ(spec.variants[0].label, "lr=0.001, dropout=0.0");
  EXPECT_EQ(spec.variants[1].label, "lr=0.001, dropout=0.3");
  EXPECT_EQ(spec.variants[3].label, "lr=0.0005, dropout=0.0");
  EXPECT_EQ(spec.variants[5].label, "lr=0.0005, dropout=0.5");
  EXPECT_EQ(spec.variants[5].overrides,
            (std::vector<std::string>{"transfer.epochs=5", "transfer.lr=0.0005", "model.dropout=0.5"}));
  EXPECT_EQ(spec.variants[6].study, "activation");
  EXPECT_EQ(spec.variants[7].overrides, (std::vector<std::string>{"model.activation='leaky_relu'"}));
}

TEST(SweepSpec, GridLabelsUseFullKeysWhenShortNamesCollide) {
  const auto spec = parse("base = 'b.toml'\n[[studies]]\nname = 'lr'\n"
                          "grid = { 'pretext.lr' = [0.1], 'transfer.lr' = [0.2] }\n");
  ASSERT_EQ(spec.variants.size(), 1U);
  EXPECT_EQ(spec.variants[0].label, "pretext.lr=0.1, transfer.lr=0.2");
}

TEST(SweepSpec, Slugs) {
  EXPECT_EQ(slugify("batch 32"), "batch-32");
  EXPECT_EQ(slugify("  LR = 0.001, dropout=0.3 "), "lr-0.001-dropout-0.3");
  EXPECT_EQ(slugify("***"), "");
}

TEST(SweepSpec, ErrorsNameTheFileLineAndKey) {
  EXPECT_EQ(error_of("[[variants]]\nlabel = 'a'\n"), "/studies/s.toml: base: expected the base config's path "
                                                    "(a string, relative to this file)");
  EXPECT_NE(error_of("base = 'b'\nbsae = 1\n[[variants]]\nlabel = 'a'\n").find("s.toml:2:1: bsae: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("base = 'b'\n[[studies]]\nname = 'x'\ngrid = { 'model.width' = 8 }\n")
                .find("s.toml:4:10: studies[0].grid.model.width: expected a non-empty array of values, found an integer"),
            std::string::npos)
      << error_of("base = 'b'\n[[studies]]\nname = 'x'\ngrid = { 'model.width' = 8 }\n");
  EXPECT_NE(error_of("base = 'b'\n[[variants]]\nlabel = 'a b'\n[[variants]]\nlabel = 'A-B'\n").find("already used by 'a b'"),
            std::string::npos);
  EXPECT_NE(error_of("base = 'b'\n[[variants]]\nset = {}\n").find("label: expected the variant's label"),
            std::string::npos);
  EXPECT_NE(error_of("base = 'b'\n").find("expected either [[studies]]"), std::string::npos);
  EXPECT_NE(error_of("base = 'b'\n[[variants]]\nlabel = 'a'\nset = 3\n").find("expected a table of config keys"),
            std::string::npos);
  EXPECT_NE(error_of("base = = 'b'\n").find("s.toml:1:"), std::string::npos);
  EXPECT_NE(error_of("base = 'b'\n[[studies]]\nname = 's'\n").find("either a list of variants or a grid"),
            std::string::npos);
}

}  // namespace
}  // namespace pretext::sweep
