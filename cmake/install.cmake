# Install rules for libedgellm (included from engine/CMakeLists.txt): the public headers, the
# static and the shared library, a CMake package (find_package(edgellm) -> edgellm::edgellm =
# shared, edgellm::edgellm_static) and a pkg-config file (edgellm.pc).
include(CMakePackageConfigHelpers)

# Only what an app can use: the C API and its header-only C++ wrapper. The gguf and kernel C++
# headers are not installed: libedgellm.so hides their symbols (cmake/edgellm.map), so an app
# that included them would not link against it.
install(FILES ${PROJECT_SOURCE_DIR}/engine/include/edgellm/edgellm.h
              ${PROJECT_SOURCE_DIR}/engine/include/edgellm/edgellm.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/edgellm)

set_target_properties(edgellm_shared PROPERTIES EXPORT_NAME edgellm)
set_target_properties(edgellm PROPERTIES EXPORT_NAME edgellm_static)
set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/edgellm)

install(TARGETS edgellm_shared EXPORT edgellmTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS edgellm EXPORT edgellmStaticTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT edgellmTargets NAMESPACE edgellm:: DESTINATION ${_cmake_dir})
install(EXPORT edgellmStaticTargets NAMESPACE edgellm:: DESTINATION ${_cmake_dir})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/edgellmConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/edgellmConfig.cmake INSTALL_DESTINATION ${_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/edgellmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/edgellmConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/edgellmConfigVersion.cmake DESTINATION ${_cmake_dir})

# pkg-config: `pkg-config --cflags --libs edgellm` links the shared library.
# The prefix is found from the .pc file's own place, so `cmake --install --prefix DIR` works.
file(RELATIVE_PATH _pc_up /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" _pc_up "${_pc_up}")
set(EDGELLM_PC_PREFIX "\${pcfiledir}/${_pc_up}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/edgellm.pc.in ${CMAKE_CURRENT_BINARY_DIR}/edgellm.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/edgellm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
