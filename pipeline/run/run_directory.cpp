#include "pipeline/run/run_directory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pretext {
namespace {

[[noreturn]] void fail_io(const std::string& what, const std::filesystem::path& path) {
  throw std::runtime_error(what + " " + path.string() + ": " + std::strerror(errno));
}

void fsync_path(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) fail_io("cannot open for fsync", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail_io("cannot fsync", path);
}

std::filesystem::path temporary_for(const std::filesystem::path& path) {
  return path.parent_path() / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()));
}

}  // namespace

void commit_file_atomically(const std::filesystem::path& path,
                            const std::function<void(const std::filesystem::path&)>& write) {
  const auto tmp = temporary_for(path);
  try {
    write(tmp);
    fsync_path(tmp, O_RDONLY);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

void write_file_atomically(const std::filesystem::path& path, std::string_view contents) {
  commit_file_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail_io("cannot create", tmp);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) fail_io("cannot write", tmp);
  });
}

RunDirectory::RunDirectory(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create run directory " + dir_.string() + ": " + ec.message());
}

void RunDirectory::write_resolved_config(const std::string& toml_text) const {
  write_file_atomically(file("config.toml"),
                        "# Resolved by pretext: the config as run, defaults and --set overrides applied.\n" + toml_text +
                            "\n");
}

void RunDirectory::add_metric(std::string_view phase, int epoch, std::string_view metric, double value) {
  std::ostringstream row;
  row.precision(9);
  row << phase << ',' << epoch << ',' << metric << ',' << value;
  metric_rows_.push_back(row.str());
}

void RunDirectory::flush_metrics() const {
  std::string csv = "phase,epoch,metric,value\n";
  for (const auto& row : metric_rows_) csv += row + '\n';
  write_file_atomically(file("metrics.csv"), csv);
}

void RunDirectory::write_summary(const toml::table& summary) const {
  std::ostringstream json;
  json << toml::json_formatter{summary} << '\n';
  write_file_atomically(file("summary.json"), json.str());
  // The same table as TOML, which pretext itself can read back (pretext report).
  std::ostringstream toml_text;
  toml_text << toml::toml_formatter{summary} << '\n';
  write_file_atomically(file("summary.toml"), toml_text.str());
}

}  // namespace pretext
