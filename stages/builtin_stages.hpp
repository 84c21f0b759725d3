// The host's own flow-graph stages, named in TOML as
//   stages = [ { name = "color_jitter", brightness = 0.2, contrast = 0.4, saturation = 0.5 } ]
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pretext/options.hpp"
#include "pretext/stage.hpp"

namespace pretext::stages {

using StageMaker = std::function<std::shared_ptr<Stage>(Options&)>;

/// (name, factory) for every built-in stage, registered by the host at start-up.
std::vector<std::pair<std::string, StageMaker>> builtin_stages();

}  // namespace pretext::stages
