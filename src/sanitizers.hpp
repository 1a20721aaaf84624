// SPDX-License-Identifier: MIT
//
// PYSOCK_ASAN: defined when AddressSanitizer instruments this build (GCC
// says so with __SANITIZE_ADDRESS__, clang with __has_feature). The library
// then gives up its recycling allocators, so that a use after free of a
// coroutine frame or a read chunk is reported instead of hidden by reuse.
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYSOCK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(PYSOCK_ASAN)
#define PYSOCK_ASAN 1
#endif
