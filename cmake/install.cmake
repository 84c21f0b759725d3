# `cmake --install build --prefix P` installs what an out-of-tree plugin
# author needs, and a working `pretext`:
#   P/bin/pretext                         the CLI
#   P/lib/libpretext_sdk.so.<api>         the SDK library plugins link against
#   P/lib/pretext/plugins/pretext_*.so    the built-in plugins
#   P/include/pretext/*.hpp               the SDK headers
#   P/lib/cmake/pretext/                  find_package(pretext) + pretext_add_plugin()
#   P/share/pretext/configs/              the shipped configs
include(CMakePackageConfigHelpers)

set(PRETEXT_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/pretext")

install(TARGETS pretext_sdk EXPORT pretextTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/pretext DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT pretextTargets NAMESPACE pretext:: DESTINATION ${PRETEXT_CMAKE_DIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/pretext/configs)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pretextConfig.cmake.in
  ${PROJECT_BINARY_DIR}/pretextConfig.cmake
  INSTALL_DESTINATION ${PRETEXT_CMAKE_DIR}
  PATH_VARS PRETEXT_INSTALL_PLUGIN_DIR CMAKE_INSTALL_BINDIR)
# The package version is the plugin API's: a plugin project asking for
# find_package(pretext 1.0) accepts any 1.x host and refuses 2.x.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pretextConfigVersion.cmake
  VERSION ${PRETEXT_PLUGIN_API_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pretextConfig.cmake ${PROJECT_BINARY_DIR}/pretextConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/pretextPlugin.cmake ${PROJECT_SOURCE_DIR}/cmake/pretextPluginNames.cmake
        DESTINATION ${PRETEXT_CMAKE_DIR})
