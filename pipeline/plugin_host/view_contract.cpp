// The view contract: see view_contract.hpp.
#include "pipeline/plugin_host/view_contract.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "common/errors.hpp"
#include "pipeline/plugin_host/plugin_guards.hpp"

namespace pretext {
namespace {

// A quiet NaN with a payload no arithmetic produces: "not written yet".
constexpr std::uint32_t kUnwrittenBits = 0x7FC5A5A5U;
constexpr std::int64_t kUnsetLabel = std::numeric_limits<std::int64_t>::min();

float unwritten() {
  float value = 0.0F;
  std::memcpy(&value, &kUnwrittenBits, sizeof value);
  return value;
}

bool is_unwritten(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits == kUnwrittenBits;
}

std::string text(const ImageShape& shape) {
  return std::to_string(shape.channels) + "x" + std::to_string(shape.height) + "x" + std::to_string(shape.width);
}

/// Guard floats before, between and after the views in guarded mode. A
/// write that runs on past a view's end meets the guard after it first, so
/// a short guard between views catches it; the last guard is long so that a
/// task writing a view several times too big still stays inside the scratch
/// memory (a write further out than that is not caught). Only each guard's
/// first kGuardScan floats are checked per call (the whole guard when they
/// show a breach), so the long guard costs memory, not time.
constexpr std::size_t kInnerGuard = 256;
constexpr std::size_t kGuardScan = 256;
std::size_t last_guard(const ImageShape& shape) { return std::max<std::size_t>(4 * shape.numel(), 4096); }

/// Per worker thread, reused by every call:
/// [guard][view 0][guard][view 1]...[view n-1][long guard]. The guards keep
/// their marker between calls (a call that breaches them ends the run and
/// drops the scratch); the views are marked afresh for each call.
struct Scratch {
  std::size_t count = 0;
  std::size_t numel = 0;
  std::vector<float> memory;
  std::vector<ImageView> views;
  std::vector<std::int64_t> labels;
};

Scratch& scratch() {
  thread_local Scratch per_thread;
  return per_thread;
}

}  // namespace

const char* to_string(ViewChecks checks) { return checks == ViewChecks::basic ? "basic" : "guarded"; }

GuardedViewMaker::GuardedViewMaker(const ViewMaker& task, const std::string& plugin, ViewChecks checks)
    : task_(task), plugin_(plugin), checks_(checks) {}

int GuardedViewMaker::views_per_image() const {
  const int count = guard_plugin_call(plugin_, "PretextTask::views_per_image", [&] { return task_.views_per_image(); });
  if (count <= 0)
    breach("views_per_image() returned " + std::to_string(count) + ", expected at least 1", "views_per_image");
  return count;
}

ImageShape GuardedViewMaker::view_shape(const ImageShape& input) const {
  const ImageShape shape =
      guard_plugin_call(plugin_, "PretextTask::view_shape", [&] { return task_.view_shape(input); });
  if (shape.channels <= 0 || shape.height <= 0 || shape.width <= 0)
    breach("view_shape(" + text(input) + ") returned " + text(shape) + ", expected positive sizes", "view_shape");
  return shape;
}

void GuardedViewMaker::make_views(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                                  const ViewSlots& views) const {
  if (checks_ == ViewChecks::guarded) {
    make_views_guarded(image, source_label, rng, views);
  } else {
    make_views_basic(image, source_label, rng, views);
  }
}

void GuardedViewMaker::call_task(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                                 const ViewSlots& views) const {
  try {
    task_.make_views(image, source_label, rng, views);
  } catch (...) {
    rethrow_as_plugin_fault(plugin_, "PretextTask::make_views");
  }
}

void GuardedViewMaker::breach(const std::string& what, const char* function) const {
  throw PluginFault(plugin_ + ": PretextTask::" + function + " broke the view contract: " + what);
}

void GuardedViewMaker::check_labels(const ViewSlots& views) const {
  for (int v = 0; v < views.size(); ++v) {
    const std::int64_t label = views.label(v);
    if (label == kUnsetLabel)
      breach("view " + std::to_string(v) + " of " + std::to_string(views.size()) +
             " has no label (expected set_label(" + std::to_string(v) + ", ...) for every view)");
    if (label < 0) breach("view " + std::to_string(v) + " has label " + std::to_string(label) + ", expected >= 0");
  }
}

void GuardedViewMaker::make_views_basic(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                                        const ViewSlots& views) const {
  const std::size_t last = views.shape().numel() - 1;
  for (int v = 0; v < views.size(); ++v) {
    views.view(v).data[0] = unwritten();
    views.view(v).data[last] = unwritten();
    views.set_label(v, kUnsetLabel);
  }
  call_task(image, source_label, rng, views);
  for (int v = 0; v < views.size(); ++v) {
    const float* pixels = views.view(v).data;
    if (is_unwritten(pixels[0]) || is_unwritten(pixels[last]))
      breach("view " + std::to_string(v) + " of " + std::to_string(views.size()) + " (" + text(views.shape()) +
             ") was not written in full (expected views_per_image() = " + std::to_string(views.size()) +
             " views, every element written)");
  }
  check_labels(views);
}

void GuardedViewMaker::make_views_guarded(ConstImageView image, std::int64_t source_label, SampleRng& rng,
                                          const ViewSlots& views) const {
  const int count = views.size();
  const ImageShape shape = views.shape();
  const std::size_t numel = shape.numel();
  const std::size_t stride = kInnerGuard + numel;
  const std::size_t tail = last_guard(shape);

  Scratch& s = scratch();
  if (s.count != static_cast<std::size_t>(count) || s.numel != numel) {
    s.memory.assign(static_cast<std::size_t>(count) * stride + tail, unwritten());
    s.views.resize(static_cast<std::size_t>(count));
    for (int v = 0; v < count; ++v) s.views[static_cast<std::size_t>(v)] = {s.memory.data() + kInnerGuard + v * stride, shape};
    s.count = static_cast<std::size_t>(count);
    s.numel = numel;
  }
  for (int v = 0; v < count; ++v) std::fill_n(s.views[static_cast<std::size_t>(v)].data, numel, unwritten());
  s.labels.assign(static_cast<std::size_t>(count), kUnsetLabel);
  for (int v = 0; v < count; ++v) s.views[static_cast<std::size_t>(v)].shape = shape;
  const ViewSlots checked(s.views.data(), s.labels.data(), count);

  try {
    call_task(image, source_label, rng, checked);
  } catch (...) {
    s = Scratch{};  // the task may have written into a guard before it threw
    throw;
  }

  const auto written = [](float value) { return !is_unwritten(value); };
  const auto dropped = [&s](const std::string& what) {
    s = Scratch{};  // its guards are dirty: the next call starts from fresh memory
    return what;
  };
  // The guard before view 0 is read at its end, where a write before the view would land.
  const float* head = s.memory.data();
  if (std::any_of(head + kInnerGuard - std::min(kInnerGuard, kGuardScan), head + kInnerGuard, written))
    breach(dropped("wrote before the start of view 0 (a " + text(shape) + " view)"));
  // Guard k follows view k - 1. The long one after the last view first: it
  // measures how far a write ran, where an inner guard only shows that it did.
  for (int k = count; k >= 1; --k) {
    const float* begin = s.memory.data() + static_cast<std::size_t>(k) * stride;
    const std::size_t length = k == count ? tail : kInnerGuard;
    if (std::none_of(begin, begin + std::min(length, kGuardScan), written)) continue;
    const float* end = begin + length;
    const auto furthest = std::find_if(std::make_reverse_iterator(end), std::make_reverse_iterator(begin), written);
    const std::size_t past = static_cast<std::size_t>(furthest.base() - begin);
    breach(dropped("wrote " + std::string(past == length ? "at least " : "") + std::to_string(past) +
                   " floats past the end of view " + std::to_string(k - 1) + " (expected a " + text(shape) +
                   " view of " + std::to_string(numel) +
                   " floats, as view_shape() returned; a task that writes a bigger view than it declares does this)"));
  }
  for (int v = 0; v < count; ++v) {
    const float* pixels = s.views[static_cast<std::size_t>(v)].data;
    const auto missing = std::count_if(pixels, pixels + numel, is_unwritten);
    if (missing != 0)
      breach("view " + std::to_string(v) + " of " + std::to_string(count) + " (" + text(shape) + "): " +
             std::to_string(missing) + " of " + std::to_string(numel) +
             " elements not written (expected every element of views_per_image() = " + std::to_string(count) +
             " views)");
  }
  check_labels(checked);
  for (int v = 0; v < count; ++v) {
    std::copy_n(s.views[static_cast<std::size_t>(v)].data, numel, views.view(v).data);
    views.set_label(v, checked.label(v));
  }
}

}  // namespace pretext
