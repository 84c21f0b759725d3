// Claims "dup_loss" like pretext_dup_a. Its model comes first so a test can
// see that a rejected library leaves none of its components registered.
#include "test_components.hpp"

namespace {

void register_components(pretext::Registrar& registrar) {
  registrar.add_model("dup_b_model", pretext_test::make_pointwise_model);
  registrar.add_loss("dup_loss", pretext_test::make_cross_entropy);
}

}  // namespace

PRETEXT_PLUGIN(register_components)
