// Config documents, sections and overrides: every mistake a user can make in a
// config file must come back as one line that points at the spot.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "pipeline/config/document.hpp"
#include "pipeline/config/section.hpp"
#include "pipeline/config/suggest.hpp"
#include "common/errors.hpp"

namespace pretext::config {
namespace {

constexpr std::int64_t kNoMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kNoMax = std::numeric_limits<std::int64_t>::max();

// The message of the ConfigError that `action` throws; fails the test if none.
std::string config_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ConfigDocument, SyntaxErrorNamesFileAndLine) {
  const std::string message = config_error([] { Document::parse("a = 1\nb = 2\nc = = 3\n", "run.toml"); });
  EXPECT_EQ(message.rfind("run.toml:3:", 0), 0u) << message;
}

TEST(ConfigDocument, LoadOfMissingFileNamesTheFile) {
  const auto missing = std::filesystem::temp_directory_path() / "pretext_config_test_no_such_file.toml";
  const std::string message = config_error([&] { Document::load(missing); });
  EXPECT_EQ(message.rfind(missing.string() + ": ", 0), 0u) << message;
  EXPECT_TRUE(contains(message, "no such file")) << message;
}

TEST(ConfigDocument, LoadReadsFileAndPositionsNameIt) {
  const auto file = std::filesystem::temp_directory_path() / "pretext_config_test_load.toml";
  {
    std::ofstream out(file);
    out << "[model]\nwidth = 64\n";
  }
  Document document = Document::load(file);
  std::filesystem::remove(file);
  Section model(document, "model");
  EXPECT_EQ(model.integer("width", 1, 1, 1024, "channels"), 64);
  EXPECT_EQ(document.where("model.width"), file.string() + ":2:9");
}

TEST(ConfigDocument, WhereGivesFilePositionOverrideOrJustTheFile) {
  Document document = Document::parse("[model]\nwidth = 64\n", "run.toml");
  document.apply_override("model.depth=4");
  EXPECT_EQ(document.where("model.width"), "run.toml:2:9");
  EXPECT_EQ(document.where("model.depth"), "--set model.depth=4");
  EXPECT_EQ(document.where("model.absent"), "run.toml");
}

TEST(ConfigSection, WrongTypeNamesPositionKeyAndFoundValue) {
  Document document = Document::parse("[transfer]\nlr = \"fast\"\n", "run.toml");
  Section transfer(document, "transfer");
  EXPECT_EQ(config_error([&] { transfer.number("lr", 0.1, 1e-8, 10.0, "learning rate"); }),
            "run.toml:2:6: transfer.lr: expected a number in [1e-08, 10], found string \"fast\"");
}

TEST(ConfigSection, OutOfRangeIsRejectedAndBoundsAreInclusive) {
  Document document = Document::parse("[train]\nepochs = 500\nwarmup = 0\nlr = 10\n", "run.toml");
  Section train(document, "train");
  EXPECT_EQ(train.integer("warmup", 5, 0, 100, "warm-up epochs"), 0);
  EXPECT_DOUBLE_EQ(train.number("lr", 0.1, 1e-8, 10.0, "learning rate"), 10.0);
  EXPECT_EQ(config_error([&] { train.integer("epochs", 10, 1, 100, "epochs"); }),
            "run.toml:2:10: train.epochs: expected an integer in [1, 100], found 500");
}

TEST(ConfigSection, ChoiceListsTheAllowedValues) {
  Document document = Document::parse("[model]\n\nactivation = \"tanh\"\n", "run.toml");
  Section model(document, "model");
  EXPECT_EQ(config_error([&] { model.choice("activation", "relu", {"relu", "leaky_relu"}, "nonlinearity"); }),
            "run.toml:3:14: model.activation: expected one of relu, leaky_relu, found \"tanh\"");
}

TEST(ConfigSection, IntegerRejectsFloatAndString) {
  Document document = Document::parse("a = 2.5\nb = \"2\"\n", "run.toml");
  Section root(document, "");
  EXPECT_TRUE(contains(config_error([&] { root.integer("a", 1, kNoMin, kNoMax, ""); }),
                       "a: expected an integer, found float 2.5"));
  EXPECT_TRUE(contains(config_error([&] { root.integer("b", 1, kNoMin, kNoMax, ""); }),
                       "b: expected an integer, found string \"2\""));
}

TEST(ConfigSection, NumberAcceptsInteger) {
  Document document = Document::parse("momentum = 1\n", "run.toml");
  Section root(document, "");
  EXPECT_DOUBLE_EQ(root.number("momentum", 0.9, 0.0, 1.0, "SGD momentum"), 1.0);
}

TEST(ConfigSection, IntegersNameTheBadElement) {
  Document document = Document::parse("[model]\ndropout_after = [1, 2.5, 3]\n", "run.toml");
  Section model(document, "model");
  EXPECT_EQ(config_error([&] { model.integers("dropout_after", {}, 0, 10, "blocks"); }),
            "run.toml:2:21: model.dropout_after[1]: expected an integer in [0, 10], found float 2.5");
}

TEST(ConfigSection, StringsCheckEachElementAgainstChoices) {
  Document document = Document::parse("[transfer]\nmodes = [\"linear\", \"finetune\", \"knn\"]\n", "run.toml");
  Section transfer(document, "transfer");
  const std::string message =
      config_error([&] { transfer.strings("modes", {"linear"}, {"linear", "finetune"}, "transfer modes"); });
  EXPECT_TRUE(contains(message, "transfer.modes[2]: expected one of linear, finetune, found \"knn\"")) << message;
}

TEST(ConfigSection, UnknownKeySuggestsTheNearestReadKey) {
  Document document = Document::parse("[transfer]\nepochs = 10\nepohcs = 3\n", "run.toml");
  Section transfer(document, "transfer");
  transfer.integer("epochs", 5, 1, 1000, "epochs");
  EXPECT_EQ(config_error([&] { transfer.finish(); }),
            "run.toml:3:1: unknown key 'transfer.epohcs'; did you mean 'transfer.epochs'?");
}

TEST(ConfigSection, UnknownKeyWithoutCloseMatchListsKnownKeys) {
  Document document = Document::parse("[transfer]\nepochs = 10\nfrobnicate = true\n", "run.toml");
  Section transfer(document, "transfer");
  transfer.integer("epochs", 5, 1, 1000, "epochs");
  transfer.number("lr", 0.1, 0.0, 1.0, "learning rate");
  EXPECT_EQ(config_error([&] { transfer.finish(); }),
            "run.toml:3:1: unknown key 'transfer.frobnicate' (known keys: epochs, lr)");
}

TEST(ConfigSection, FinishAcceptsReadChildAndMarkedKeys) {
  Document document = Document::parse("seed = 1\nnotes = \"x\"\n[model]\nwidth = 8\n", "run.toml");
  Section root(document, "");
  root.integer("seed", 0, 0, kNoMax, "seed");
  root.mark_read("notes");
  Section model = root.child("model");
  model.integer("width", 4, 1, 64, "width");
  EXPECT_NO_THROW(root.finish());
  EXPECT_NO_THROW(model.finish());
}

TEST(ConfigSection, SubTableNobodyAskedForIsUnknownKeyOfParent) {
  Document document = Document::parse("seed = 1\n[modle]\nwidth = 8\n", "run.toml");
  Section root(document, "");
  root.integer("seed", 0, 0, kNoMax, "seed");
  root.child("model");
  EXPECT_EQ(config_error([&] { root.finish(); }), "run.toml:2:2: unknown key 'modle'; did you mean 'model'?");
}

TEST(ConfigSection, ContainsDoesNotMarkRead) {
  Document document = Document::parse("extra = 1\n", "run.toml");
  Section root(document, "");
  EXPECT_TRUE(root.contains("extra"));
  EXPECT_FALSE(root.contains("absent"));
  EXPECT_TRUE(contains(config_error([&] { root.finish(); }), "unknown key 'extra'"));
}

TEST(ConfigOverride, NumberReplacesTheFileValue) {
  Document document = Document::parse("[transfer]\nlr = 0.1\n", "run.toml");
  document.apply_override("transfer.lr=0.5");
  Section transfer(document, "transfer");
  EXPECT_DOUBLE_EQ(transfer.number("lr", 0.01, 0.0, 1.0, "learning rate"), 0.5);
  EXPECT_EQ(document.where("transfer.lr"), "--set transfer.lr=0.5");
}

TEST(ConfigOverride, BarePathIsTakenAsString) {
  Document document = Document::parse("", "run.toml");
  document.apply_override("data.root=/srv/data/cifar-10");
  Section data(document, "data");
  EXPECT_EQ(data.string("root", "data", "dataset directory"), "/srv/data/cifar-10");
}

TEST(ConfigOverride, ArrayValueIsParsedAsToml) {
  Document document = Document::parse("[model]\ndropout_after = [1]\n", "run.toml");
  document.apply_override("model.dropout_after=[2, 3]");
  Section model(document, "model");
  EXPECT_EQ(model.integers("dropout_after", {}, 0, 10, "blocks"), (std::vector<std::int64_t>{2, 3}));
}

TEST(ConfigOverride, UnknownKeyIsReportedWithItsSetSource) {
  Document document = Document::parse("[transfer]\nepochs = 10\n", "run.toml");
  document.apply_override("transfer.epohcs=3");
  Section transfer(document, "transfer");
  transfer.integer("epochs", 5, 1, 1000, "epochs");
  EXPECT_EQ(config_error([&] { transfer.finish(); }),
            "--set transfer.epohcs=3: unknown key 'transfer.epohcs'; did you mean 'transfer.epochs'?");
}

TEST(ConfigOverride, UnknownTableCreatedBySetIsReportedWithItsSetSource) {
  Document document = Document::parse("", "run.toml");
  document.apply_override("trasnfer.lr=0.1");
  Section root(document, "");
  root.child("transfer");
  EXPECT_EQ(config_error([&] { root.finish(); }),
            "--set trasnfer.lr=0.1: unknown key 'trasnfer'; did you mean 'transfer'?");
}

TEST(ConfigOverride, WrongTypeIsReportedWithItsSetSource) {
  Document document = Document::parse("[transfer]\nlr = 0.1\n", "run.toml");
  document.apply_override("transfer.lr=fast");
  Section transfer(document, "transfer");
  EXPECT_EQ(config_error([&] { transfer.number("lr", 0.1, 1e-8, 10.0, "learning rate"); }),
            "--set transfer.lr=fast: transfer.lr: expected a number in [1e-08, 10], found string \"fast\"");
}

TEST(ConfigOverride, PathThroughNonTableIsAnError) {
  Document document = Document::parse("[model]\nwidth = 3\n", "run.toml");
  EXPECT_EQ(config_error([&] { document.apply_override("model.width.x=1"); }),
            "--set model.width.x=1: model.width: expected a table, found integer");
}

// Found by fuzz/config_fuzz.cpp (tests/fuzz/corpus/config/bad-override.toml):
// an index into an array that does not exist created a table on the way and
// then complained about it: "pretext.stages: expected an array, found table".
TEST(ConfigOverride, IndexIntoAMissingArrayNamesTheMissingKey) {
  Document document = Document::parse("[pretext]\nepochs = 1\n", "run.toml");
  EXPECT_EQ(config_error([&] { document.apply_override("pretext.stages[0].name=flip"); }),
            "--set pretext.stages[0].name=flip: pretext.stages: expected an array, found no such key (--set changes an "
            "existing element of an array; it cannot add one)");
  EXPECT_FALSE(document.root()["pretext"]["stages"]);  // and nothing was made up in the document
}

TEST(ConfigOverride, MalformedAssignmentsAreErrors) {
  Document document = Document::parse("", "run.toml");
  EXPECT_TRUE(contains(config_error([&] { document.apply_override("model.width"); }),
                       "--set model.width: expected key=value"));
  EXPECT_TRUE(contains(config_error([&] { document.apply_override("=3"); }), "--set =3: expected key=value"));
  EXPECT_TRUE(contains(config_error([&] { document.apply_override("model..width=3"); }), "expected a dotted key"));
}

TEST(ConfigResolved, HoldsDefaultsAndOverridesAndReparses) {
  Document document = Document::parse("[model]\nwidth = 64\nname = \"conv4\"\n", "run.toml");
  document.apply_override("model.depth=6");
  Section model(document, "model");
  model.integer("width", 32, 1, 1024, "width");
  model.integer("depth", 4, 1, 64, "depth");
  model.number("dropout", 0.25, 0.0, 1.0, "dropout");
  model.string("name", "resnet", "architecture");
  model.integers("dropout_after", {1, 2}, 0, 10, "blocks");
  model.child("head").boolean("bias", true, "bias in the head");

  const toml::table reparsed = toml::parse(document.resolved_text());
  EXPECT_EQ(reparsed["model"]["width"].value<std::int64_t>(), 64);
  EXPECT_EQ(reparsed["model"]["depth"].value<std::int64_t>(), 6);
  EXPECT_EQ(reparsed["model"]["dropout"].value<double>(), 0.25);
  EXPECT_EQ(reparsed["model"]["name"].value<std::string>(), "conv4");
  EXPECT_EQ(reparsed["model"]["dropout_after"][1].value<std::int64_t>(), 2);
  EXPECT_EQ(reparsed["model"]["head"]["bias"].value<bool>(), true);
  // Validation must leave the user's document as it was.
  EXPECT_FALSE(document.root()["model"]["dropout"]);
}

TEST(ConfigTableArray, EachElementIsASectionAtItsIndex) {
  Document document = Document::parse(
      "[[pretext.stages]]\nname = \"rotation\"\n\n[[pretext.stages]]\nname = \"jigsaw\"\ngrid = 9\n", "run.toml");
  Section pretext(document, "pretext");
  std::vector<Section> stages = pretext.table_array("stages");
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[1].path(), "pretext.stages[1]");
  EXPECT_EQ(stages[0].string("name", "", "stage"), "rotation");
  EXPECT_EQ(stages[1].string("name", "", "stage"), "jigsaw");
  EXPECT_EQ(stages[0].integer("grid", 4, 1, 16, "grid"), 4);
  EXPECT_EQ(config_error([&] { stages[1].integer("grid", 4, 1, 8, "grid"); }),
            "run.toml:6:8: pretext.stages[1].grid: expected an integer in [1, 8], found 9");

  const toml::table reparsed = toml::parse(document.resolved_text());
  EXPECT_EQ(reparsed["pretext"]["stages"][0]["grid"].value<std::int64_t>(), 4);
  EXPECT_EQ(reparsed["pretext"]["stages"][1]["name"].value<std::string>(), "jigsaw");
}

TEST(ConfigTableArray, InlineArrayOfTablesAndSectionByPathWork) {
  Document document = Document::parse("stages = [{ name = \"a\" }, { name = \"b\" }]\n", "run.toml");
  Section root(document, "");
  EXPECT_EQ(root.table_array("stages").size(), 2u);
  Section second(document, "stages[1]");
  EXPECT_EQ(second.string("name", "", "stage"), "b");
  EXPECT_TRUE(root.table_array("absent").empty());
}

TEST(ConfigTableArray, AnythingElseIsAnError) {
  Document document = Document::parse("stages = [1, 2]\nname = \"x\"\n", "run.toml");
  Section root(document, "");
  EXPECT_EQ(config_error([&] { root.table_array("stages"); }),
            "run.toml:1:10: stages: expected an array of tables, found an array [ 1, 2 ]");
  EXPECT_TRUE(contains(config_error([&] { root.table_array("name"); }), "name: expected an array of tables"));
}

TEST(ConfigChild, AbsentKeyGivesDefaultsAndRecordsThem) {
  Document document = Document::parse("", "run.toml");
  Section root(document, "");
  Section optimizer = root.child("optimizer");
  EXPECT_EQ(optimizer.path(), "optimizer");
  EXPECT_EQ(optimizer.choice("kind", "sgd", {"sgd", "adam"}, "optimizer"), "sgd");
  EXPECT_NO_THROW(optimizer.finish());
  EXPECT_EQ(document.resolved()["optimizer"]["kind"].value<std::string>(), "sgd");
}

TEST(ConfigChild, KeyThatIsNotATableIsAnError) {
  Document document = Document::parse("model = 3\n", "run.toml");
  Section root(document, "");
  EXPECT_EQ(config_error([&] { root.child("model"); }), "run.toml:1:9: model: expected a table, found integer 3");
}

TEST(ConfigSection, FailNamesTheKeyPosition) {
  Document document = Document::parse("[train]\nbatch = 12\n", "run.toml");
  Section train(document, "train");
  train.integer("batch", 8, 1, 4096, "batch size");
  train.integer("accumulate", 1, 1, 64, "steps");
  EXPECT_EQ(config_error([&] { train.fail("batch", "a multiple of 8"); }),
            "run.toml:2:9: train.batch: expected a multiple of 8, found 12");
  EXPECT_EQ(config_error([&] { train.fail("accumulate", "at least 2"); }),
            "run.toml: train.accumulate: expected at least 2, found the default 1");
}

TEST(ConfigSuggest, NearestWithinToleranceOnly) {
  EXPECT_EQ(edit_distance("epohcs", "epochs"), 2u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(nearest("epohcs", {"lr", "epochs"}), "epochs");
  EXPECT_EQ(nearest("frobnicate", {"lr", "epochs"}), "");
  EXPECT_EQ(nearest("x", {}), "");
}

}  // namespace
}  // namespace pretext::config
