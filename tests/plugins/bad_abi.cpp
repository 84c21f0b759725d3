// Built against a future plugin-API major version. The descriptor is written
// by hand because PRETEXT_PLUGIN always stamps the current version.
#include "test_components.hpp"

extern "C" BOOST_SYMBOL_EXPORT const ::pretext::PluginAbi pretext_plugin_abi = {::pretext::kPluginAbiMagic,
                                                                                sizeof(::pretext::PluginAbi),
                                                                                ::pretext::kPluginApiMajor + 1,
                                                                                ::pretext::kPluginApiMinor,
                                                                                TORCH_VERSION,
                                                                                _GLIBCXX_USE_CXX11_ABI};

extern "C" BOOST_SYMBOL_EXPORT void pretext_plugin_register(::pretext::Registrar& registrar) {
  registrar.add_loss("bad_abi_loss", pretext_test::make_cross_entropy);
}
