// A well-formed plugin: one model and one loss.
#include "test_components.hpp"

namespace {

void register_components(pretext::Registrar& registrar) {
  registrar.add_model("test_model", pretext_test::make_pointwise_model);
  registrar.add_loss("test_loss", pretext_test::make_cross_entropy);
}

}  // namespace

PRETEXT_PLUGIN(register_components)
