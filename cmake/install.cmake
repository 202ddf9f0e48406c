# Install rules: headers, both libraries, the executable, the CMake package
# (find_package(shardprop) -> shardprop::shardprop, shardprop::shardprop_static,
# shardprop::fortran) and shardprop.pc for pkg-config.
include(CMakePackageConfigHelpers)

set(shardprop_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/shardprop)
set(shardprop_fortran_dir ${CMAKE_INSTALL_DATADIR}/shardprop/fortran)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/lib/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT development FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
install(FILES ${PROJECT_SOURCE_DIR}/lib/fortran/shardprop.f90 DESTINATION ${shardprop_fortran_dir}
        COMPONENT development)

install(TARGETS shardprop shardprop_static EXPORT shardprop-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
if(TARGET shardprop_cli)
  install(TARGETS shardprop_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
endif()

install(EXPORT shardprop-targets NAMESPACE shardprop:: DESTINATION ${shardprop_cmake_dir}
        COMPONENT development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/shardprop-config.cmake.in
                              ${PROJECT_BINARY_DIR}/shardprop-config.cmake
                              INSTALL_DESTINATION ${shardprop_cmake_dir}
                              PATH_VARS shardprop_fortran_dir)
# 0.x: only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/shardprop-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/shardprop-config.cmake
              ${PROJECT_BINARY_DIR}/shardprop-config-version.cmake
        DESTINATION ${shardprop_cmake_dir} COMPONENT development)

# pkg-config: the C and C++ APIs alike. Requires.private/Libs.private serve `--static`. The
# prefix is found from the .pc file's own place, so `cmake --install --prefix` relocates it.
set(shardprop_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "shardprop: CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR must be relative")
endif()
file(RELATIVE_PATH shardprop_pc_to_prefix "/prefix/${shardprop_pc_dir}" "/prefix")
string(REGEX REPLACE "/$" "" shardprop_pc_to_prefix "${shardprop_pc_to_prefix}")
set(shardprop_pc_prefix "\${pcfiledir}/${shardprop_pc_to_prefix}")
set(shardprop_pc_libdir "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
set(shardprop_pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
# Built with MPI: static linking needs it too (Debian's Open MPI ships mpi-c.pc).
set(shardprop_pc_mpi "")
if(SHARDPROP_WITH_MPI)
  set(shardprop_pc_mpi " mpi-c")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/shardprop.pc.in ${PROJECT_BINARY_DIR}/shardprop.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/shardprop.pc DESTINATION ${shardprop_pc_dir}
        COMPONENT development)
