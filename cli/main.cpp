// pretext: the command-line front end. One table of subcommands; each one's
// implementation is in its own file (see commands.hpp).
//
// Exit codes: 0 success; 2 usage, config, input or plugin error; 130/143 stopped
// by SIGINT/SIGTERM after a checkpoint; 1 anything else (a write that failed
// for want of space or permission included: "cannot write FILE: REASON").
// The mapping from error type to code lives in common/errors.hpp.
#include <csignal>
#include <iostream>
#include <string>

#include "cli/arguments.hpp"
#include "cli/commands.hpp"
#include "cli/memory_allocator.hpp"
#include "common/errors.hpp"

namespace {

using pretext::cli::Arguments;

struct Command {
  const char* name;
  int (*function)(const Arguments&);
  const char* usage;  // synopsis line(s), then an indented description
};

const Command kCommands[] = {
    {"run", pretext::cli::run_command,
     "pretext run CONFIG [--set KEY=VALUE ...] [--out DIR] [--force]\n"
     "    Pretext training on the unlabelled split, transfer to the labelled split\n"
     "    in each of transfer.modes, evaluation on validation and test data.\n"
     "    Writes config.toml, model.toml, metrics.csv, pretext.pt, backbone.pt,\n"
     "    transfer-<mode>.pt per mode, summary.json (and .toml) and report.html\n"
     "    into DIR (default: runs/<config name>-<date>-<time>).\n"
     "    A DIR that already holds a run is refused: continue it with pretext\n"
     "    resume DIR, or pass --force to clear it. Ctrl-C (SIGINT) or SIGTERM\n"
     "    stops after the current step with a checkpoint (exit 130 / 143); a\n"
     "    second signal exits at once.\n"},
    {"resume", pretext::cli::resume_command,
     "pretext resume RUN_DIR\n"
     "    Continues an interrupted run from its newest readable checkpoint\n"
     "    (checkpoints/step-N.pt; [checkpoint] every_steps and keep), with the\n"
     "    run's own config.toml, which must be unchanged. Finishes the pretext\n"
     "    phase, then runs transfer and evaluation from the start. The results\n"
     "    equal those of an uninterrupted run.\n"},
    {"config", pretext::cli::config_command,
     "pretext config CONFIG [--set KEY=VALUE ...]\n"
     "    Validates CONFIG (plugins included; the data files are not read) and\n"
     "    prints it resolved: defaults filled in and overrides applied.\n"},
    {"sample", pretext::cli::sample_command,
     "pretext sample RUN_DIR [--count N] --out FILE.png\n"
     "    Images from the generator of a finished run whose pretext task\n"
     "    generates (the GAN), as a grid, 8 per row (default N: 64). Reads the\n"
     "    run's config.toml, model.toml and pretext.pt, not its data.\n"},
    {"export", pretext::cli::export_command,
     "pretext export RUN_DIR [--mode pretext|fixed|finetuned|scratch] --out FILE.pt\n"
     "    A run's networks as a PyTorch state dict (torch.load reads it): the\n"
     "    pretext backbone (default), or a transfer mode's backbone and head.\n"},
    {"embed", pretext::cli::embed_command,
     "pretext embed RUN_DIR --data CONFIG_OR_FILE --out FILE.npy [--mode M] [--pool none|avg]\n"
     "    Frozen features of a dataset (a config's [data], a .mat or an IDX file)\n"
     "    as an N x D float32 .npy, and labels as FILE.labels.npy (-1: unknown).\n"},
    {"plugins", pretext::cli::plugins_command,
     "pretext plugins\n"
     "    Lists the models, pretext tasks, losses and stages that can be named.\n"},
    {"check-plugin", pretext::cli::check_plugin_command,
     "pretext check-plugin NAME_OR_FILE [--set KEY=VALUE ...]\n"
     "    An author's first command: loads one plugin library (by a name it\n"
     "    registers, or by path), prints its ABI and what it registers, and\n"
     "    exercises each component: a pretext task's make_views on hand-made\n"
     "    images (counts, shapes, labels, every element written, determinism\n"
     "    per seed, 1 and 2 threads), a few train_steps (finite loss, weights\n"
     "    change) and a save/load round trip; a model's output shapes; a\n"
     "    loss's value; a stage's determinism. One line per check; exit 0 only\n"
     "    when all pass (1 when one fails, 2 when the library cannot load).\n"},
    {"report", pretext::cli::report_command,
     "pretext report RUN_OR_SWEEP_DIR\n"
     "    Writes report.html into the directory: charts (also as charts/*.svg) and\n"
     "    tables of a run, or of every variant of a sweep (sweep-manifest.toml).\n"
     "    Self-contained: no scripts, nothing fetched. Prints the report's path.\n"},
    {"sweep", pretext::cli::sweep_command,
     "pretext sweep SWEEP.toml [--base CONFIG] [--out DIR] [--set KEY=VALUE ...] [--jobs N]\n"
     "    Runs every variant of a sweep file (a base config plus labelled key\n"
     "    overrides, listed or as a grid) into DIR/<variant>, then writes\n"
     "    DIR/report.html. Every variant is validated first. Run it again to\n"
     "    resume: finished variants are skipped, an interrupted one restarts.\n"
     "    --jobs N runs N variants at once, splitting the threads between them.\n"
     "    --set applies to every variant; --base replaces the sweep's base config\n"
     "    (the same studies on another dataset). DIR defaults to\n"
     "    runs/sweep-<sweep name>[-<base name>].\n"},
    {"preprocess", pretext::cli::preprocess_command,
     "pretext preprocess CONFIG [--set KEY=VALUE ...] --out FILE.pack [--shard I/N]\n"
     "    Decodes the config's data.path once (an image folder, IDX or SVHN .mat;\n"
     "    folders on all cores), sized as training wants it (image_size, pad_to),\n"
     "    into a packed file that runs map in place: data.source = \"packed\",\n"
     "    data.path = FILE.pack. Shows progress and images/s; prints FILE.pack.\n"
     "    --shard I/N packs only images [I*n/N, (I+1)*n/N) of the n, I 0-based\n"
     "    (0 <= I < N, like torchrun's ranks): N hosts each decode one part, and\n"
     "    data.path = \"DIR/train-*.pack\" reads the N files as the whole set.\n"},
    {"launch", pretext::cli::launch_command,
     "pretext launch --nproc-per-node N [--nnodes M --node-rank R --master HOST:PORT] -- COMMAND ...\n"
     "    Data-parallel: starts N processes of `pretext COMMAND ...` on this node\n"
     "    with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and\n"
     "    MASTER_PORT set (torchrun's variables; one node: 127.0.0.1 and a free\n"
     "    port), and OMP_NUM_THREADS = cores / N unless set. Their output lines\n"
     "    are prefixed [rank R]. When one fails the others get SIGTERM, then\n"
     "    SIGKILL after 30 s, and launch exits with the first failure's code.\n"},
};

constexpr const char* kHeader = "pretext: self-supervised pretext tasks and transfer, from a TOML config.\n\nUsage:\n";
constexpr const char* kFooter = R"(  pretext --help | pretext COMMAND --help

Options:
  --set KEY=VALUE   Overrides any config key, e.g. --set transfer.epochs=5,
                    --set data.path=/data/train_32x32.mat. Repeatable.
  --out PATH        Output directory or file.
  --force           pretext run: clear an output directory that holds a run.

Environment:
  PRETEXT_PLUGIN_PATH   ':'-separated directories searched for plugins.

Exit codes: 0 success, 2 usage/config/input/plugin error, 1 other failure
            (a plugin that throws while running included),
            130/143 stopped by SIGINT/SIGTERM (checkpoint written).
)";

void print_usage(std::ostream& out, const Command* only) {
  if (only != nullptr) {
    out << "Usage:\n  " << only->usage;
    return;
  }
  out << kHeader;
  for (const auto& command : kCommands) out << "  " << command.usage;
  out << kFooter;
}

const Command* find_command(const std::string& name) {
  for (const auto& command : kCommands)
    if (name == command.name) return &command;
  return nullptr;
}

int dispatch(int argc, char** argv) {
  const Arguments args = pretext::cli::parse_arguments(argc, argv);
  if (args.command.empty()) {
    print_usage(args.help ? std::cout : std::cerr, nullptr);
    return args.help ? 0 : 2;
  }
  const Command* command = find_command(args.command);
  // parse_arguments refuses unknown commands already; this catches one that
  // arguments.cpp's flag table has and this table lacks.
  if (command == nullptr) throw pretext::UsageError("unknown command '" + args.command + "' (try pretext --help)");
  if (args.help) {
    print_usage(std::cout, command);
    return 0;
  }
  return command->function(args);
}

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) then fails the write with EFBIG, reported
  // like a full disk ("cannot write FILE: File too large", exit 1), instead
  // of SIGXFSZ killing the process with a core dump mid-checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  pretext::cli::keep_freed_memory_for_reuse();  // docs/performance.md
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& e) {
    // Which exit code and words each error type gets: common/errors.hpp.
    const pretext::ErrorReport report = pretext::report_of(e);
    std::cerr << "pretext: " << (*report.kind != '\0' ? std::string(report.kind) + ": " : std::string()) << e.what()
              << '\n';
    return report.exit_code;
  }
}
