// Claims to be built against another LibTorch. Written by hand because
// PRETEXT_PLUGIN always stamps the TORCH_VERSION it is compiled with.
#include "test_components.hpp"

extern "C" BOOST_SYMBOL_EXPORT const ::pretext::PluginAbi pretext_plugin_abi = {::pretext::kPluginAbiMagic,
                                                                                sizeof(::pretext::PluginAbi),
                                                                                ::pretext::kPluginApiMajor,
                                                                                ::pretext::kPluginApiMinor,
                                                                                "0.0.0",
                                                                                _GLIBCXX_USE_CXX11_ABI};

extern "C" BOOST_SYMBOL_EXPORT void pretext_plugin_register(::pretext::Registrar& registrar) {
  registrar.add_loss("torch_mismatch_loss", pretext_test::make_cross_entropy);
}
