// Adds a loss, then fails: the host must report the failure and drop the loss.
#include <stdexcept>

#include "test_components.hpp"

namespace {

void register_components(pretext::Registrar& registrar) {
  registrar.add_loss("throws_loss", pretext_test::make_cross_entropy);
  throw std::runtime_error("no GPU found for throws_loss");
}

}  // namespace

PRETEXT_PLUGIN(register_components)
