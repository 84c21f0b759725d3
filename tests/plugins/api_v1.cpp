// A plugin as an SDK 1.3 build stamps it: API 1.3, whose make_views took bare
// pointers. The descriptor is written by hand because PRETEXT_PLUGIN always
// stamps the current version; the host must refuse it before registering.
#include "test_components.hpp"

extern "C" BOOST_SYMBOL_EXPORT const ::pretext::PluginAbi pretext_plugin_abi = {
    ::pretext::kPluginAbiMagic, sizeof(::pretext::PluginAbi), 1, 3, TORCH_VERSION, _GLIBCXX_USE_CXX11_ABI};

extern "C" BOOST_SYMBOL_EXPORT void pretext_plugin_register(::pretext::Registrar& registrar) {
  registrar.add_loss("api_v1_loss", pretext_test::make_cross_entropy);
}
