# SPDX-License-Identifier: MIT
#
# Advanced I/O end to end (issue 4): pysock's message I/O, descriptor passing
# and stream adapter with CPython's socket module as the peer, a strace proof
# that a gather send is one system call, and the examples fd_passing and
# udp_echo run for real. Included by tests/CMakeLists.txt; the driver is
# tests/interop/advanced_interop.py and the pysock side advanced_peer.cpp.

find_program(PYSOCK_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYSOCK_PYTHON3 NAMES python3)
find_program(PYSOCK_STRACE NAMES strace)

if(NOT PYSOCK_PYTHON3)
  message(STATUS "pysock: python3 not found, skipping the interop tests in tests/interop/advanced.cmake")
  return()
endif()

# The pysock side of the CPython interop tests.
add_executable(advanced_peer ${CMAKE_CURRENT_LIST_DIR}/advanced_peer.cpp)
target_link_libraries(advanced_peer PRIVATE pysock::pysock pysock_warnings)

set(_pysock_advanced_driver ${CMAKE_CURRENT_LIST_DIR}/advanced_interop.py)
set(_pysock_advanced_tests
  "interop_advanced_python_send_fds_to_pysock_recv_fds_and_back|fds-both-ways $<TARGET_FILE:advanced_peer>"
  "interop_advanced_python_sendmsg_to_pysock_recvmsg_into_and_back|sendmsg-recvmsg-into $<TARGET_FILE:advanced_peer>"
  "interop_advanced_python_makefile_client_talks_to_pysock_stream_server|makefile-line-protocol $<TARGET_FILE:advanced_peer>")
if(TARGET udp_echo)
  list(APPEND _pysock_advanced_tests
    "interop_advanced_python_udp_client_talks_to_pysock_udp_echo_server|udp-python-client $<TARGET_FILE:udp_echo>"
    "interop_advanced_pysock_udp_echo_client_talks_to_python_udp_server|udp-python-server $<TARGET_FILE:udp_echo>"
    "example_udp_echo_client_and_server_round_trip_count_datagrams|udp-example-pair $<TARGET_FILE:udp_echo>"
    "example_udp_echo_client_gives_up_when_nobody_answers|udp-client-times-out $<TARGET_FILE:udp_echo>")
endif()
if(TARGET fd_passing)
  list(APPEND _pysock_advanced_tests
    "example_fd_passing_child_prints_the_file_the_parent_passed|fd-passing-file $<TARGET_FILE:fd_passing>"
    "example_fd_passing_default_file_is_printed_and_removed|fd-passing-default $<TARGET_FILE:fd_passing>")
endif()

foreach(entry IN LISTS _pysock_advanced_tests)
  string(FIND "${entry}" "|" bar)
  string(SUBSTRING "${entry}" 0 ${bar} name)
  math(EXPR bar "${bar} + 1")
  string(SUBSTRING "${entry}" ${bar} -1 args)
  separate_arguments(args UNIX_COMMAND "${args}")
  add_test(NAME ${name} COMMAND ${PYSOCK_PYTHON3} ${_pysock_advanced_driver} ${args})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS "interop;advanced" SKIP_RETURN_CODE 77)
endforeach()

# Scatter/gather is one sendmsg(2): counted with strace (skipped, exit 77,
# when strace is missing or cannot trace in this sandbox).
set(_pysock_strace_arg "")
if(PYSOCK_STRACE)
  set(_pysock_strace_arg ${PYSOCK_STRACE})
endif()
add_test(NAME interop_advanced_sendmsg_of_16_buffers_is_one_syscall_under_strace
         COMMAND ${PYSOCK_PYTHON3} ${_pysock_advanced_driver} gather-one-syscall
                 $<TARGET_FILE:advanced_peer> ${_pysock_strace_arg})
set_tests_properties(interop_advanced_sendmsg_of_16_buffers_is_one_syscall_under_strace PROPERTIES
  TIMEOUT 60 LABELS "interop;advanced" SKIP_RETURN_CODE 77)
