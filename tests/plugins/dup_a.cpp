// Registers "dup_loss", which pretext_dup_b also claims.
#include "test_components.hpp"

namespace {

void register_components(pretext::Registrar& registrar) {
  registrar.add_loss("dup_loss", pretext_test::make_cross_entropy);
}

}  // namespace

PRETEXT_PLUGIN(register_components)
