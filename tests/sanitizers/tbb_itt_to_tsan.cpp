// ThreadSanitizer builds only (tests/CMakeLists.txt): hands oneTBB's own
// synchronisation annotations to ThreadSanitizer.
//
// libtbb.so is not instrumented, so ThreadSanitizer cannot see the
// happens-before edges its scheduler provides. oneTBB's headers describe
// those edges for threading tools when TBB_USE_PROFILING_TOOLS=2 (set by
// cmake/warnings.cmake for PRETEXT_SANITIZE=thread): "releasing X" before a
// thread publishes work through X, "acquired X" after another thread has
// taken it. The headers pass them to tbb::detail::r1::call_itt_notify, which
// libtbb.so exports as a no-op unless Intel's tools are attached. Defining it
// in the test executable takes precedence over the library's and turns each
// annotation into the matching __tsan_release / __tsan_acquire.
//
// The edges it adds are the ones TBB really provides, for example:
// every task's last access to the graph happens before its wait_context is
// released, and flow::graph::wait_for_all() acquires that wait_context, so
// the caller may destroy the graph and read what the node bodies wrote.
// It adds nothing for a task's hand-over from spawn to execution, which
// libtbb does not annotate; see stages/tsan_annotations.hpp and
// tests/sanitizers/tsan.supp for that.
#include <oneapi/tbb/profiling.h>
#include <sanitizer/tsan_interface.h>

namespace tbb::detail::r1 {

void call_itt_notify(int type, void* object) {
  switch (type) {
    case d1::releasing:
      __tsan_release(object);
      break;
    case d1::acquired:
      __tsan_acquire(object);
      break;
    default:  // prepare, cancel, destroy: no ordering to record
      break;
  }
}

}  // namespace tbb::detail::r1
