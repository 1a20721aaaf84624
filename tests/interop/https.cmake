# SPDX-License-Identifier: MIT
#
# `pysock http.server --certfile F --keyfile F` (HTTPS on the event loop
# transport, --ciphers/--ciphersuites) end to end: curl --cacert, openssl
# s_client and CPython's urllib/ssl against
# certificates the test makes with the openssl command, a plaintext client on
# the HTTPS port, curl without the CA. Included by tests/CMakeLists.txt; the
# driver is tests/interop/https_interop.py (it reuses http_interop.py's server).
# A missing openssl or curl, or a pysock without TLS, is a skip (exit 77)
# with the reason, never a pass.
find_program(PYSOCK_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYSOCK_PYTHON3 NAMES python3)
find_program(PYSOCK_CURL NAMES curl)

if(NOT PYSOCK_PYTHON3)
  message(STATUS "pysock: python3 not found, skipping tests/interop/https.cmake")
  return()
endif()
if(NOT TARGET pysock_cli)
  message(STATUS "pysock: tools not built (PYSOCK_BUILD_TOOLS=OFF), skipping tests/interop/https.cmake")
  return()
endif()

set(_pysock_https_driver ${CMAKE_CURRENT_LIST_DIR}/https_interop.py)
foreach(case IN ITEMS curl_get_keepalive_head curl_large_file_and_listing python_urllib
                      plaintext_client_then_curl curl_without_ca_fails
                      pipelining_close_notify_and_stop cli_errors ciphers_and_ciphersuites
                      cipher_cli_errors)
  set(name interop_https_${case})
  add_test(NAME ${name}
           COMMAND ${PYSOCK_PYTHON3} ${_pysock_https_driver} ${case} $<TARGET_FILE:pysock_cli>
                   "${PYSOCK_CURL}")
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS "interop;http;ssl" SKIP_RETURN_CODE 77)
endforeach()
