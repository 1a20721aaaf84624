# SPDX-License-Identifier: MIT
#
# `pysock` (tools/) end to end: http.server against curl, CPython's
# http.client and urllib, and raw sockets with malformed requests, slowloris
# and rude disconnects; the echo and netcat subcommands against CPython.
# Included by tests/CMakeLists.txt; the driver is tests/interop/http_interop.py.
find_program(PYSOCK_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYSOCK_PYTHON3 NAMES python3)
find_program(PYSOCK_CURL NAMES curl)
# Optional peers: a case whose program is missing is skipped with the reason
# (exit 77), never passed. The driver looks on PATH again at run time.
find_program(PYSOCK_CHROMIUM NAMES chromium chromium-browser)

if(NOT PYSOCK_PYTHON3)
  message(STATUS "pysock: python3 not found, skipping tests/interop/http.cmake")
  return()
endif()
if(NOT TARGET pysock_cli)
  message(STATUS "pysock: tools not built (PYSOCK_BUILD_TOOLS=OFF), skipping tests/interop/http.cmake")
  return()
endif()

set(_pysock_http_driver ${CMAKE_CURRENT_LIST_DIR}/http_interop.py)
set(_pysock_http_cases
  curl_keepalive_two_urls
  curl_range_head_and_conditional
  python_http_client
  python_urllib
  malformed_requests
  pipelining
  slowloris
  client_disconnects_mid_response
  sigterm_finishes_in_flight_response
  sigint_finishes_in_flight_response
  file_changes_are_seen
  wrk_smoke
  chromium_listing_and_file
  banner_and_cli_errors
  threads_two_loops
  concurrent_keepalive_200
  no_access_log
  loop_io_uring_option
  echo_pair
  netcat_tcp_half_close
  netcat_udp_and_unix)
# The http.server cases again on the hidden blocking transport
# (--transport threads: a thread per connection). Not concurrent_keepalive_200:
# that transport serves 64 connections at once by design.
set(_pysock_http_threads_cases
  curl_keepalive_two_urls
  curl_range_head_and_conditional
  python_http_client
  python_urllib
  malformed_requests
  pipelining
  slowloris
  client_disconnects_mid_response
  sigterm_finishes_in_flight_response
  sigint_finishes_in_flight_response
  no_access_log
  wrk_smoke)
foreach(case IN LISTS _pysock_http_cases)
  set(name interop_http_${case})
  add_test(NAME ${name}
           COMMAND ${PYSOCK_PYTHON3} ${_pysock_http_driver} ${case} $<TARGET_FILE:pysock_cli>
                   "${PYSOCK_CURL}")
  # 77: a peer program (curl, wrk, chromium) is missing. Chromium's
  # screenshot goes to the build tree: <build>/tests/http_output/.
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS "interop;http" SKIP_RETURN_CODE 77
                       ENVIRONMENT "PYSOCK_TEST_OUTPUT_DIR=${CMAKE_CURRENT_BINARY_DIR}/http_output;PYSOCK_CHROMIUM=${PYSOCK_CHROMIUM}")
endforeach()
foreach(case IN LISTS _pysock_http_threads_cases)
  set(name interop_http_threads_transport_${case})
  add_test(NAME ${name}
           COMMAND ${PYSOCK_PYTHON3} ${_pysock_http_driver} ${case} $<TARGET_FILE:pysock_cli>
                   "${PYSOCK_CURL}")
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS "interop;http" SKIP_RETURN_CODE 77
                       ENVIRONMENT "PYSOCK_HTTP_SERVER_ARGS=--transport threads")
endforeach()
