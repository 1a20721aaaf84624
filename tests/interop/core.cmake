# SPDX-License-Identifier: MIT
#
# The socket module's end-to-end tests: the tutorial's programs in examples/
# run for real, and talk to real peers (CPython's socket module, nc).
# Included by tests/CMakeLists.txt; the driver is tests/interop/core_interop.py.

# The system Python first: a pyenv or venv python3 earlier in PATH works too,
# but the system one is what a fresh Debian machine has.
find_program(PYSOCK_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYSOCK_PYTHON3 NAMES python3)
find_program(PYSOCK_NC NAMES nc netcat)

if(NOT PYSOCK_PYTHON3)
  message(STATUS "pysock: python3 not found, skipping the interop tests in tests/interop/core.cmake")
  return()
endif()
if(NOT TARGET echo_server OR NOT TARGET echo_client OR NOT TARGET socketpair_fork)
  message(STATUS "pysock: examples not built (PYSOCK_BUILD_EXAMPLES=OFF), skipping their end-to-end tests")
  return()
endif()

set(_pysock_core_driver ${CMAKE_CURRENT_LIST_DIR}/core_interop.py)

# name → driver arguments
set(_pysock_core_tests
  "example_echo_pair_round_trips_hello_world|echo-pair $<TARGET_FILE:echo_server> $<TARGET_FILE:echo_client>"
  "example_echo_server_serves_several_clients_in_turn|echo-server-serial $<TARGET_FILE:echo_server>"
  "example_socketpair_fork_prints_what_the_parent_wrote|socketpair-fork $<TARGET_FILE:socketpair_fork>"
  "interop_python_client_talks_to_pysock_echo_server|python-client $<TARGET_FILE:echo_server>"
  "interop_pysock_echo_client_talks_to_python_server|python-server $<TARGET_FILE:echo_client>")

foreach(entry IN LISTS _pysock_core_tests)
  string(FIND "${entry}" "|" bar)
  string(SUBSTRING "${entry}" 0 ${bar} name)
  math(EXPR bar "${bar} + 1")
  string(SUBSTRING "${entry}" ${bar} -1 args)
  separate_arguments(args UNIX_COMMAND "${args}")
  add_test(NAME ${name} COMMAND ${PYSOCK_PYTHON3} ${_pysock_core_driver} ${args})
  set_tests_properties(${name} PROPERTIES TIMEOUT 30 LABELS "interop;core")
endforeach()

# nc (netcat-openbsd) as a client: the third kind of peer. Exit code 77 from
# the driver means "skipped" (nc missing or not the OpenBSD flavour).
add_test(NAME interop_nc_client_talks_to_pysock_echo_server
         COMMAND ${PYSOCK_PYTHON3} ${_pysock_core_driver} nc-client $<TARGET_FILE:echo_server>
                 ${PYSOCK_NC})
set_tests_properties(interop_nc_client_talks_to_pysock_echo_server PROPERTIES
  TIMEOUT 30 LABELS "interop;core" SKIP_RETURN_CODE 77)
