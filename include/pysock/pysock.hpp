// SPDX-License-Identifier: MIT
// pysock/pysock.hpp — everything pysock offers, in one include.
#pragma once

#include "pysock/address.hpp"
#include "pysock/buffer.hpp"
#include "pysock/convert.hpp"
#include "pysock/error.hpp"
#include "pysock/loop.hpp"
#include "pysock/makefile.hpp"
#include "pysock/resolver.hpp"
#include "pysock/select.hpp"
#include "pysock/selectors.hpp"
#include "pysock/socket.hpp"
#include "pysock/streams.hpp"
#include "pysock/task.hpp"
