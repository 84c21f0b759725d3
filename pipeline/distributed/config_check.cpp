#include "pipeline/distributed/config_check.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <sstream>

#include "common/errors.hpp"

namespace pretext::distributed {
namespace {

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

// FNV-1a: the hash only has to tell texts apart, not resist an adversary,
// and must be the same on every host (std::hash need not be).
std::string fnv1a_hex(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

std::string joined(const std::vector<ConfigLine>& lines) {
  std::string text;
  for (const auto& line : lines) text += line.text + "\n";
  return text;
}

std::string value_of(const ConfigLine* line) {
  if (line == nullptr) return "nothing";
  const auto equals = line->text.find('=');
  return equals == std::string::npos ? "'" + line->text + "'" : trim(line->text.substr(equals + 1));
}

}  // namespace

std::vector<ConfigLine> config_lines(const std::string& toml_text) {
  std::vector<ConfigLine> lines;
  std::istringstream in(toml_text);
  std::string table;
  std::string key;  // of the last "key = ..." line: a value continued on the next lines belongs to it
  for (std::string raw; std::getline(in, raw);) {
    const std::string line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '[') {
      // "[a.b]" or "[[a.b]]": the table the following keys belong to.
      table = trim(line.substr(line.find_first_not_of('['), line.find(']') - line.find_first_not_of('[')));
      key = table;
    } else if (const auto equals = line.find('='); equals != std::string::npos && line.front() != '"' &&
                                                   line.front() != '\'' && line.front() != ']') {
      const std::string name = trim(line.substr(0, equals));
      key = table.empty() ? name : table + "." + name;
    }
    lines.push_back({key, line});
  }
  return lines;
}

std::string check_same_config(ProcessGroup& group, const std::string& canonical_config_text,
                              const std::vector<std::string>& ignored_keys) {
  std::vector<ConfigLine> lines = config_lines(canonical_config_text);
  lines.erase(std::remove_if(lines.begin(), lines.end(),
                             [&](const ConfigLine& line) {
                               return std::find(ignored_keys.begin(), ignored_keys.end(), line.key) !=
                                      ignored_keys.end();
                             }),
              lines.end());
  const std::string text = joined(lines);
  const std::string hash = fnv1a_hex(text);
  const auto hashes = group.all_gather_strings("config hash", hash);
  if (std::all_of(hashes.begin(), hashes.end(), [&](const std::string& h) { return h == hash; })) return hash;

  // Every rank saw the same hashes, so every rank comes here and exchanges
  // the texts (a few kilobytes), to name the key rather than a hash.
  const auto texts = group.all_gather_strings("config text", text);
  const auto reference = config_lines(texts[0]);
  for (std::size_t r = 1; r < texts.size(); ++r) {
    if (hashes[r] == hashes[0]) continue;
    const auto theirs = config_lines(texts[r]);
    std::size_t i = 0;
    while (i < theirs.size() && i < reference.size() && theirs[i].text == reference[i].text) ++i;
    const ConfigLine* mine = i < theirs.size() ? &theirs[i] : nullptr;
    const ConfigLine* zero = i < reference.size() ? &reference[i] : nullptr;
    const std::string key = mine != nullptr ? mine->key : zero->key;
    std::string where = "'" + key + "'";
    if (mine != nullptr && zero != nullptr && mine->key != zero->key)
      where = "'" + zero->key + "' (rank " + std::to_string(r) + " has '" + mine->key + "' there)";
    throw ConfigError("the ranks' configs differ: rank " + std::to_string(r) + " has " + where + " = " +
                      value_of(mine) + " where rank 0 has " + value_of(zero) + " (config hash " + hashes[r] +
                      " vs " + hashes[0] + "); every rank must run the same config");
  }
  return hash;  // unreachable: some rank differs from rank 0 when the hashes differ
}

}  // namespace pretext::distributed
