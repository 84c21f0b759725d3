// Happens-before annotations for ThreadSanitizer; no-ops in every other build.
//
// oneTBB's scheduler (libtbb.so, not instrumented) hands each flow-graph
// message from the thread that put it to the thread that runs the next node
// body. The hand-over is properly synchronised, but in code ThreadSanitizer
// cannot see, so it would report the next body's accesses to the message as
// races with the previous body's. Release the message where a body lets it
// go and acquire it where the next body picks it up:
//
//   Work* operator()(Work* work) const {
//     PRETEXT_TSAN_ACQUIRE(work);
//     ... read and write *work ...
//     PRETEXT_TSAN_RELEASE(work);
//     return work;
//   }
//
// A serial node's body that keeps state between calls (statistics, say) does
// the same with that state: successive calls may run on different threads.
// The key is only an address both sides name. Annotate only what the graph
// really hands over: an annotation on data shared any other way hides a race.
//
// Graph completion needs nothing here: tests/sanitizers/tbb_itt_to_tsan.cpp
// turns oneTBB's own annotations into ThreadSanitizer's, and wait_for_all()
// announces that every body has finished. Only when a body threw does
// wait_for_all() rethrow before announcing it; waiting again on the idle
// graph before destroying the nodes makes the announcement.
#pragma once

#if defined(__SANITIZE_THREAD__)  // GCC
#define PRETEXT_TSAN_ENABLED 1
#elif defined(__has_feature)  // Clang
#if __has_feature(thread_sanitizer)
#define PRETEXT_TSAN_ENABLED 1
#endif
#endif

#if defined(PRETEXT_TSAN_ENABLED)
#include <sanitizer/tsan_interface.h>
/// Everything this thread did so far happens before a later PRETEXT_TSAN_ACQUIRE(key).
#define PRETEXT_TSAN_RELEASE(key) __tsan_release(const_cast<void*>(static_cast<const volatile void*>(key)))
/// What any thread did before PRETEXT_TSAN_RELEASE(key) happens before what follows.
#define PRETEXT_TSAN_ACQUIRE(key) __tsan_acquire(const_cast<void*>(static_cast<const volatile void*>(key)))
#else
#define PRETEXT_TSAN_RELEASE(key) static_cast<void>(key)
#define PRETEXT_TSAN_ACQUIRE(key) static_cast<void>(key)
#endif
