// pretext: the command-line front end.
//
//   pretext run CONFIG [--set key=value ...] [--out DIR]
//   pretext config CONFIG [--set key=value ...]     print the resolved config
//   pretext sample RUN_DIR --count N --out FILE.png  images from a run's generator
//   pretext plugins                                  list available components
//
// Exit codes: 0 success; 2 usage, config or input error; 1 anything else.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>

#include "pipeline/config/document.hpp"
#include "pipeline/errors.hpp"
#include "pipeline/plugin_host/plugin_host.hpp"
#include "pipeline/train/job.hpp"
#include "stages/builtin_stages.hpp"

namespace {

constexpr const char* kUsage = R"(pretext: self-supervised pretext tasks and transfer, from a TOML config.

Usage:
  pretext run CONFIG [--set KEY=VALUE ...] [--out DIR]
      Pretext training on the unlabelled split, transfer to the labelled split
      in each of transfer.modes, evaluation on validation and test data.
      Writes config.toml, metrics.csv, pretext.pt, backbone.pt and summary.json
      into DIR (default: runs/<config name>-<date>-<time>).
  pretext config CONFIG [--set KEY=VALUE ...]
      Validates CONFIG (plugins included) and prints it resolved: defaults
      filled in and overrides applied.
  pretext sample RUN_DIR [--count N] --out FILE.png
      Images from the generator of a finished run whose pretext task
      generates (the GAN), as a grid, 8 per row (default N: 64).
  pretext plugins
      Lists the models, pretext tasks, losses and stages that can be named.
  pretext --help | pretext COMMAND --help

Options:
  --set KEY=VALUE   Overrides any config key, e.g. --set transfer.epochs=5,
                    --set data.path=/data/train_32x32.mat. Repeatable.
  --out DIR         Run directory.

Environment:
  PRETEXT_PLUGIN_PATH   ':'-separated directories searched for plugins.

Exit codes: 0 success, 2 usage/config/input error, 1 other failure.
)";

struct Arguments {
  std::string command;
  std::vector<std::string> positional;
  std::vector<std::string> overrides;
  std::string out;
  std::int64_t count = 64;
  bool help = false;
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= argc) throw pretext::UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      args.help = true;
    } else if (a == "--set") {
      args.overrides.push_back(value(a));
    } else if (a.rfind("--set=", 0) == 0) {
      args.overrides.push_back(a.substr(6));
    } else if (a == "--out") {
      args.out = value(a);
    } else if (a.rfind("--out=", 0) == 0) {
      args.out = a.substr(6);
    } else if (a == "--count") {
      const std::string text = value(a);
      try {
        args.count = std::stoll(text);
      } catch (const std::exception&) {
        args.count = 0;
      }
      if (args.count < 1 || args.count > 4096) throw pretext::UsageError("--count expects 1..4096, got " + text);
    } else if (a.rfind("--", 0) == 0) {
      throw pretext::UsageError("unknown option " + a);
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::filesystem::path config_argument(const Arguments& args) {
  if (args.positional.size() != 1)
    throw pretext::UsageError("'pretext " + args.command + "' takes exactly one CONFIG file");
  return args.positional.front();
}

int run(const Arguments& args) {
  pretext::JobRequest request{config_argument(args), args.overrides, args.out};
  pretext::Job job(request);
  auto progress = pretext::Progress::to_stderr();
  job.run(progress);
  std::cout << (job.run_directory() / "summary.json").string() << '\n';
  return 0;
}

int print_config(const Arguments& args) {
  pretext::JobRequest request{config_argument(args), args.overrides, {}};
  pretext::Job job(request);
  std::cout << job.resolved_config() << '\n';
  return 0;
}

int sample(const Arguments& args) {
  if (args.positional.size() != 1) throw pretext::UsageError("'pretext sample' takes exactly one RUN_DIR");
  if (args.out.empty()) throw pretext::UsageError("'pretext sample' needs --out FILE.png");
  const std::filesystem::path run_dir = args.positional.front();
  pretext::JobRequest request{run_dir / "config.toml", {}, run_dir};
  pretext::Job job(request);
  job.sample(run_dir / "pretext.pt", args.count, args.out);
  std::cout << args.out << '\n';
  return 0;
}

int list_plugins() {
  pretext::PluginHost host;
  for (auto& [name, maker] : pretext::stages::builtin_stages()) host.builtins().add_stage(name, maker);
  for (const auto& dir : host.search_path()) {
    boost::system::error_code ec;
    for (boost::filesystem::directory_iterator it(dir.string(), ec), end; !ec && it != end; it.increment(ec)) {
      const auto file = it->path();
      if (file.extension() == ".so" && file.filename().string().rfind("pretext_", 0) == 0) {
        try {
          host.load_library(file.string());
        } catch (const std::exception& e) {
          std::cerr << "skipped: " << e.what() << '\n';
        }
      }
    }
  }
  for (auto kind : {pretext::ComponentKind::model, pretext::ComponentKind::pretext, pretext::ComponentKind::loss,
                    pretext::ComponentKind::stage}) {
    std::cout << pretext::to_string(kind) << ":\n";
    for (const auto& name : host.names(kind)) std::cout << "  " << name << "  " << host.origin(kind, name) << '\n';
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments args = parse(argc, argv);
    if (args.command.empty() || (args.help && args.command.empty())) {
      std::cout << kUsage;
      return args.command.empty() && !args.help ? 2 : 0;
    }
    if (args.help) {
      std::cout << kUsage;
      return 0;
    }
    if (args.command == "run") return run(args);
    if (args.command == "config") return print_config(args);
    if (args.command == "sample") return sample(args);
    if (args.command == "plugins") return list_plugins();
    throw pretext::UsageError("unknown command '" + args.command + "' (try pretext --help)");
  } catch (const pretext::UsageError& e) {
    std::cerr << "pretext: " << e.what() << '\n';
    return 2;
  } catch (const pretext::ConfigError& e) {
    std::cerr << "pretext: config error: " << e.what() << '\n';
    return 2;
  } catch (const pretext::InputError& e) {
    std::cerr << "pretext: input error: " << e.what() << '\n';
    return 2;
  } catch (const pretext::PluginError& e) {
    std::cerr << "pretext: plugin error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "pretext: error: " << e.what() << '\n';
    return 1;
  }
}
