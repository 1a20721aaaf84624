# SPDX-License-Identifier: MIT
#
# The event loop's end-to-end tests: the async examples run for real, with
# CPython's socket module as the other side. Included by tests/CMakeLists.txt;
# the driver is tests/interop/loop_examples.py.

find_program(PYSOCK_LOOP_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYSOCK_LOOP_PYTHON3 NAMES python3)
if(NOT PYSOCK_LOOP_PYTHON3)
  message(STATUS "pysock: python3 not found, skipping the event-loop end-to-end tests")
  return()
endif()
if(NOT TARGET async_echo_server OR NOT TARGET async_echo_client OR NOT TARGET async_chat)
  message(STATUS "pysock: async examples not built, skipping their end-to-end tests")
  return()
endif()

set(_pysock_loop_driver ${CMAKE_CURRENT_LIST_DIR}/loop_examples.py)
set(_pysock_loop_tests
  "async_example_echo_pair_round_trips_hello_world|echo-pair $<TARGET_FILE:async_echo_server> $<TARGET_FILE:async_echo_client>"
  "async_example_echo_server_serves_twenty_python_clients_at_once|echo-python-clients $<TARGET_FILE:async_echo_server>"
  "async_example_echo_server_stops_cleanly_on_sigterm|echo-sigterm $<TARGET_FILE:async_echo_server>"
  "async_example_echo_server_on_two_threads_serves_and_stops_on_sigterm|echo-threads $<TARGET_FILE:async_echo_server>"
  "async_example_chat_room_relays_lines_and_announces_departures|chat $<TARGET_FILE:async_chat>")

foreach(entry IN LISTS _pysock_loop_tests)
  string(FIND "${entry}" "|" bar)
  string(SUBSTRING "${entry}" 0 ${bar} name)
  math(EXPR bar "${bar} + 1")
  string(SUBSTRING "${entry}" ${bar} -1 args)
  separate_arguments(args UNIX_COMMAND "${args}")
  add_test(NAME ${name} COMMAND ${PYSOCK_LOOP_PYTHON3} ${_pysock_loop_driver} ${args})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS "interop;loop")
  # The same programs on the io_uring backend, chosen the way users do
  # (PYSOCK_LOOP); only where it is built, or they would test epoll twice.
  if(PYSOCK_WITH_IO_URING)
    add_test(NAME ${name}_on_io_uring COMMAND ${PYSOCK_LOOP_PYTHON3} ${_pysock_loop_driver} ${args})
    set_tests_properties(${name}_on_io_uring PROPERTIES TIMEOUT 60 LABELS "interop;loop"
                         ENVIRONMENT "PYSOCK_LOOP=io_uring")
  endif()
endforeach()
