// The parts of Job that keep the ranks of a data-parallel run in step:
// the same task state to begin with, and after each epoch the same batch-norm
// statistics and a check that the replicas are still equal.
#include <algorithm>
#include <sstream>

#include "pipeline/plugin_host/plugin_guards.hpp"
#include "pipeline/train/job.hpp"
#include "pipeline/train/training_context.hpp"

namespace pretext {

void Job::start_replicas(PretextTask& task) {
  if (!parallel_->distributed()) return;
  const std::string& label = assembled_.task_label();
  // Rank 0's task, whole: its networks, optimiser state and whatever else
  // save() holds. Seeded alike, the ranks would build the same networks, but
  // a plugin that draws from its own generator would not.
  std::string bytes;
  if (parallel_->writes()) {
    torch::serialize::OutputArchive archive;
    guard_plugin_call(label, "PretextTask::save", [&] { task.save(archive); });
    std::ostringstream out;
    archive.save_to(out);
    bytes = out.str();
  }
  parallel_->broadcast(bytes);
  if (!parallel_->writes()) {
    torch::serialize::InputArchive archive;
    std::istringstream in(bytes);
    archive.load_from(in, compute_.device);
    guard_plugin_call(label, "PretextTask::load", [&] { task.load(archive); });
    // Each rank its own draws from here on (dropout masks, a GAN's noise);
    // rank 0 keeps those of a single process.
    torch::manual_seed(phase_seed(options().seed, "pretext.rank" + std::to_string(parallel_->rank())));
  }
}

void Job::average_task_buffers(PretextTask& task, const HostTrainingContext& context) {
  if (!parallel_->distributed()) return;
  auto modules = context.known_modules();
  torch::nn::Module* backbone = task.backbone().get();
  if (std::find(modules.begin(), modules.end(), backbone) == modules.end()) modules.push_back(backbone);
  // Averaged once each: the mean of equal values need not be exactly that value.
  for (torch::nn::Module* module : modules) parallel_->average_buffers(*module);
}

void Job::end_epoch_replicas(PretextTask& task, const HostTrainingContext& context) {
  if (!parallel_->distributed()) return;
  average_task_buffers(task, context);
  parallel_->check_replicas(task.backbone()->parameters(), "the pretext backbone (" + assembled_.task_label() + ")");
}

}  // namespace pretext
