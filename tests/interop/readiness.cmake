# SPDX-License-Identifier: MIT
#
# Readiness (select / poll / epoll / selectors): the examples driven end to end
# by real peers — curl and CPython's http.client against select_http_server,
# CPython sockets and 200 concurrent pysock clients against
# selectors_echo_server. Every test starts its server on port 0, reads the
# port from the server's "listening on" line, and stops it with --count.
find_package(Python3 COMPONENTS Interpreter)
find_program(PYSOCK_CURL curl)

# The pysock echo load generator of bench/ doubles as the 200-client checker.
if(TARGET selectors_echo_server)
  add_executable(readiness_echo_load ${PROJECT_SOURCE_DIR}/bench/echo_load.cpp)
  target_link_libraries(readiness_echo_load PRIVATE pysock::pysock pysock_warnings)
endif()

if(Python3_Interpreter_FOUND AND TARGET select_http_server)
  add_test(NAME readiness_select_http_server_interop
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/readiness_http_server.py
                   $<TARGET_FILE:select_http_server> "${PYSOCK_CURL}")
  set_tests_properties(readiness_select_http_server_interop PROPERTIES TIMEOUT 60)
endif()

if(Python3_Interpreter_FOUND AND TARGET selectors_echo_server)
  add_test(NAME readiness_selectors_echo_server_cpython_clients
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/readiness_echo_server.py
                   cpython $<TARGET_FILE:selectors_echo_server>)
  set_tests_properties(readiness_selectors_echo_server_cpython_clients PROPERTIES TIMEOUT 90)
  add_test(NAME readiness_selectors_echo_server_200_pysock_clients
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/readiness_echo_server.py
                   pysock $<TARGET_FILE:selectors_echo_server> $<TARGET_FILE:readiness_echo_load>)
  set_tests_properties(readiness_selectors_echo_server_200_pysock_clients PROPERTIES TIMEOUT 90)
endif()
