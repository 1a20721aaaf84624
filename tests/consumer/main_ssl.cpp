// SPDX-License-Identifier: MIT
//
// The TLS part of an installed pysock (pysock::ssl / pysock-ssl.pc): a client
// context with Python's defaults. Prints "consumer_ssl: context ok".
#include <pysock/ssl.hpp>

#include <iostream>

int main() {
  const pysock::ssl_context ctx(pysock::protocol_tls_client);
  if (ctx.verify_mode() != pysock::cert_required || !ctx.check_hostname()) {
    std::cerr << "consumer_ssl: unexpected client defaults\n";
    return 1;
  }
  std::cout << "consumer_ssl: context ok\n";
  return 0;
}
