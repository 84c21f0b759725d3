// Torch-free access to one component's TOML section, for plugins and stages.
//
// Every read declares the key's default, its valid range or choices, and a
// one-line doc. The host implementation records each answer into the resolved
// config, reports mistakes with file:line:column, and afterwards rejects any
// key in the section that nobody asked for, suggesting the nearest known one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/config.hpp>

namespace pretext {

class BOOST_SYMBOL_VISIBLE Options {
 public:
  virtual ~Options() = default;

  /// The dotted path of this section, e.g. "model" or "pretext.stages[0]".
  [[nodiscard]] virtual std::string path() const = 0;

  virtual std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                               std::int64_t max, std::string_view doc) = 0;
  virtual double number(std::string_view key, double fallback, double min, double max,
                        std::string_view doc) = 0;
  virtual bool boolean(std::string_view key, bool fallback, std::string_view doc) = 0;
  virtual std::string string(std::string_view key, std::string_view fallback, std::string_view doc) = 0;
  /// A string that must be one of `choices`.
  virtual std::string choice(std::string_view key, std::string_view fallback,
                             const std::vector<std::string>& choices, std::string_view doc) = 0;
  /// A list of integers, each within [min, max].
  virtual std::vector<std::int64_t> integers(std::string_view key, std::vector<std::int64_t> fallback,
                                             std::int64_t min, std::int64_t max, std::string_view doc) = 0;

  /// Reports a cross-key constraint violation at `key`'s source position. Never returns.
  [[noreturn]] virtual void fail(std::string_view key, std::string_view expected) = 0;
};

}  // namespace pretext
