#include "pipeline/train/sample.hpp"

#include <vector>

#include "common/errors.hpp"
#include "pipeline/artefacts/png_grid.hpp"
#include "pipeline/artefacts/run_directory.hpp"
#include "pipeline/train/assembled_run.hpp"
#include "pipeline/train/checkpoint.hpp"
#include "pipeline/train/compute.hpp"
#include "pipeline/train/saved_run.hpp"
#include "pipeline/train/training_context.hpp"

namespace pretext {

void write_sample_grid(Sampler& sampler, std::int64_t count, const std::filesystem::path& png) {
  const torch::Tensor images = sampler.sample(count).to(torch::kCPU, torch::kFloat).contiguous();
  const ImageShape shape{static_cast<int>(images.size(1)), static_cast<int>(images.size(2)),
                         static_cast<int>(images.size(3))};
  std::vector<float> pixels(images.data_ptr<float>(), images.data_ptr<float>() + images.numel());
  artefacts::write_png_grid(png, pixels, images.size(0), shape, 8);
}

void sample_from_run(const std::filesystem::path& run_dir, std::int64_t count, const std::filesystem::path& png) {
  const auto run = AssembledRun::from_run_directory(run_dir, AssembledRun::Components::everything);
  const RunOptions& options = run->options();
  auto* sampler = dynamic_cast<Sampler*>(run->task().get());
  if (sampler == nullptr)
    throw InputError("pretext.plugin '" + options.pretext.plugin + "' does not generate images; nothing to sample");
  const auto checkpoint = artefacts::RunLayout(run_dir).pretext_state();
  if (!std::filesystem::is_regular_file(checkpoint))
    throw InputError(checkpoint.string() + ": no such checkpoint (expected the pretext.pt of a finished run)");
  const NetworkShape shape = read_network_shape(run_dir);  // the input the networks were built for

  const Compute compute = Compute::from(options.trainer);
  torch::manual_seed(phase_seed(options.seed, "sample"));
  HostTrainingContext context(compute, ModelInput{shape.input}, run->model(), run->pretext_loss(),
                              options.pretext.optimizer, run_dir.string(),
                              [&run](const std::string& name) { return run->loss_with_defaults(name); });
  run->task()->setup(context);
  load_pretext_state(*run->task(), checkpoint, compute.device);
  write_sample_grid(*sampler, count, png);
}

}  // namespace pretext
