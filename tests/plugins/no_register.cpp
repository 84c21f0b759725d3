// Exports a valid descriptor but no pretext_plugin_register.
#include "pretext/sdk.hpp"

extern "C" BOOST_SYMBOL_EXPORT const ::pretext::PluginAbi pretext_plugin_abi = {::pretext::kPluginAbiMagic,
                                                                                sizeof(::pretext::PluginAbi),
                                                                                ::pretext::kPluginApiMajor,
                                                                                ::pretext::kPluginApiMinor,
                                                                                TORCH_VERSION,
                                                                                _GLIBCXX_USE_CXX11_ABI};
