// A plugin named after its only component, so resolve() can find it by name.
#include "test_components.hpp"

namespace {

void register_components(pretext::Registrar& registrar) {
  registrar.add_loss("tiny_loss", pretext_test::make_cross_entropy);
}

}  // namespace

PRETEXT_PLUGIN(register_components)
