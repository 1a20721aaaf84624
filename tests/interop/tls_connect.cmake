# SPDX-License-Identifier: MIT
#
# `pysock connect --tls` against `openssl s_server` (driver:
# tests/interop/tls_connect_interop.py; 77 = skipped, e.g. no openssl command).
find_program(PYSOCK_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
find_program(PYSOCK_PYTHON3 NAMES python3)
if(NOT PYSOCK_PYTHON3 OR NOT TARGET pysock_cli OR NOT TARGET pysock::ssl)
  message(STATUS "pysock: python3, the pysock command or pysock::ssl missing: no connect --tls tests")
  return()
endif()

foreach(case IN ITEMS echo unknown-ca wrong-name no-verify)
  string(REPLACE "-" "_" id ${case})
  set(name interop_tls_connect_${id})
  add_test(NAME ${name} COMMAND ${PYSOCK_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/tls_connect_interop.py
                                $<TARGET_FILE:pysock_cli> ${case})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60 LABELS "interop;tls" SKIP_RETURN_CODE 77)
endforeach()
