# SPDX-License-Identifier: MIT
#
# Install rules: the library, its headers, a CMake package (find_package(pysock)
# gives pysock::pysock) and a pkg-config file. Included from the top-level
# CMakeLists.txt after the `pysock` target exists and GNUInstallDirs is loaded.
include(CMakePackageConfigHelpers)

set(PYSOCK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/pysock
    CACHE STRING "Where pysockConfig.cmake is installed, relative to the prefix")

install(TARGETS pysock
  EXPORT pysockTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# (The include path users get comes from the target's INSTALL_INTERFACE.)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/pysock
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")

# pysock::pysock for users, the same name as the in-tree alias, so a project can
# switch between add_subdirectory/FetchContent and find_package unchanged.
install(EXPORT pysockTargets
  NAMESPACE pysock::
  DESTINATION ${PYSOCK_CMAKE_DIR})

# A static pysock carries liburing (io_uring loop) as a link dependency of its
# imported target: pysockConfig.cmake then looks it up again for consumers.
get_target_property(_pysock_type pysock TYPE)
if(PYSOCK_WITH_IO_URING AND _pysock_type STREQUAL "STATIC_LIBRARY")
  set(PYSOCK_CONFIG_FIND_LIBURING ON)
else()
  set(PYSOCK_CONFIG_FIND_LIBURING OFF)
endif()
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/pysockConfig.cmake.in
  ${PROJECT_BINARY_DIR}/pysockConfig.cmake
  INSTALL_DESTINATION ${PYSOCK_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same minor is compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/pysockConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/pysockConfig.cmake
  ${PROJECT_BINARY_DIR}/pysockConfigVersion.cmake
  DESTINATION ${PYSOCK_CMAKE_DIR})

# pkg-config: paths relative to the .pc file's own folder (${pcfiledir}), so the
# file stays right when the tree is installed with `cmake --install --prefix X`
# to another prefix than the one configured, or moved afterwards.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(PYSOCK_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(PYSOCK_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH _pysock_up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" _pysock_up "${_pysock_up}")
  set(PYSOCK_PC_PREFIX "\${pcfiledir}/${_pysock_up}")
  set(PYSOCK_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(PYSOCK_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(PYSOCK_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# A static libpysock.a cannot carry its dependency: plain `pkg-config --libs
# pysock` must then name liburing itself (Requires), or a program using the
# io_uring loop fails to link. A shared library links it already (private).
set(PYSOCK_PC_REQUIRES "")
set(PYSOCK_PC_REQUIRES_PRIVATE "")
if(PYSOCK_WITH_IO_URING AND _pysock_type STREQUAL "STATIC_LIBRARY")
  set(PYSOCK_PC_REQUIRES "liburing")
elseif(PYSOCK_WITH_IO_URING)
  set(PYSOCK_PC_REQUIRES_PRIVATE "liburing")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/pysock.pc.in ${PROJECT_BINARY_DIR}/pysock.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pysock.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# pysock::ssl (TLS over OpenSSL 3), when built: in the same export set, so
# find_package(pysock) gives pysock::ssl too (pysockConfig.cmake then finds
# OpenSSL), and its own pkg-config file pysock-ssl.pc.
if(TARGET pysock_ssl)
  install(TARGETS pysock_ssl
    EXPORT pysockTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pysock-ssl.pc.in ${PROJECT_BINARY_DIR}/pysock-ssl.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pysock-ssl.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
