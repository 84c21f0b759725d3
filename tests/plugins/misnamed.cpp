// Built as pretext_misnamed.so but registers the loss "renamed-loss": the
// host must find it by the name it registers (plugin_lookup_test).
#include "test_components.hpp"

namespace {
void register_components(pretext::Registrar& registrar) {
  registrar.add_loss("renamed-loss", pretext_test::make_cross_entropy);
}
}  // namespace

PRETEXT_PLUGIN(register_components)
