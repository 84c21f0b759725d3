# All dependencies come from Debian 12 packages (see scripts/setup.sh).
find_package(Torch REQUIRED)
find_package(TBB REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS filesystem)
find_package(ZLIB REQUIRED)
find_package(PNG REQUIRED)
find_package(JPEG REQUIRED)  # libjpeg-turbo: decoding image folders
find_package(PkgConfig REQUIRED)
pkg_check_modules(MATIO REQUIRED IMPORTED_TARGET matio)

# LibTorch as one imported interface target. TORCH_CXX_FLAGS carries
# -D_GLIBCXX_USE_CXX11_ABI, which every TU touching std::string across the
# torch boundary must agree on.
add_library(pretext_torch INTERFACE)
target_link_libraries(pretext_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(pretext_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
separate_arguments(PRETEXT_TORCH_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(pretext_torch INTERFACE ${PRETEXT_TORCH_FLAGS})

# One precompiled <torch/torch.h>, reused by every torch translation unit
# (REUSE_FROM needs identical flags, hence one place that sets them).
add_library(pretext_torch_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/torch_pch.cpp)
target_link_libraries(pretext_torch_pch PUBLIC pretext_torch pretext_sdk PRIVATE pretext_warnings)
target_precompile_headers(pretext_torch_pch PUBLIC <torch/torch.h>)

# Links torch and reuses the shared PCH.
function(pretext_use_torch target)
  target_link_libraries(${target} PRIVATE pretext_torch pretext_warnings)
  target_precompile_headers(${target} REUSE_FROM pretext_torch_pch)
  # The PCH is built -fPIC; an executable's default -fPIE would invalidate it.
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
endfunction()
