// SPDX-License-Identifier: MIT
//
// pysock/task.hpp and the task machinery of pysock/loop.hpp: laziness,
// propagation of values and exceptions, cancellation, gather, wait_for,
// event. No sockets here (test_loop.cpp and test_streams.cpp have them).
#include <pysock/loop.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pysock::task;

namespace {

task<int> answer(bool& ran) {
  ran = true;
  co_return 42;
}

task<int> add_one(task<int> inner) { co_return co_await inner + 1; }

task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}

task<void> sleeper(std::chrono::milliseconds d, std::vector<int>& log, int id) {
  co_await pysock::sleep(d);
  log.push_back(id);
}

task<int> slow_value(std::chrono::milliseconds d, int v) {
  co_await pysock::sleep(d);
  co_return v;
}

}  // namespace

TEST(task, is_lazy_and_runs_only_when_awaited) {
  bool ran = false;
  task<int> t = answer(ran);
  EXPECT_FALSE(ran) << "a coroutine must not start before it is awaited";
  EXPECT_FALSE(t.done());
  const int v = pysock::run(add_one(std::move(t)));
  EXPECT_TRUE(ran);
  EXPECT_EQ(v, 43);
}

TEST(task, destroying_a_task_that_never_ran_runs_none_of_its_body) {
  bool ran = false;
  { task<int> t = answer(ran); }
  EXPECT_FALSE(ran);
}

TEST(task, exception_propagates_through_nested_awaits) {
  auto outer = []() -> task<int> { co_return co_await add_one(add_one(thrower())); };
  try {
    pysock::run(outer());
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
}

TEST(task, awaiting_a_task_twice_is_invalid_state_error) {
  auto body = []() -> task<void> {
    bool ran = false;
    task<int> t = answer(ran);
    EXPECT_EQ(co_await t, 42);
    EXPECT_THROW(co_await t, pysock::invalid_state_error);
  };
  pysock::run(body());
}

TEST(task, a_million_synchronous_awaits_do_not_grow_the_stack) {
  // Symmetric transfer: each co_await of a finished-at-once task returns to
  // the caller without a nested call frame. Without it this overflows.
  auto body = []() -> task<long> {
    long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) {
      bool ran = false;
      sum += co_await answer(ran);
    }
    co_return sum;
  };
  EXPECT_EQ(pysock::run(body()), 42L * 1'000'000);
}

TEST(task, frame_allocator_hands_back_the_same_block_for_the_same_size_class) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer build: frames come from malloc so use-after-free is detected";
#else
  void* a = pysock::detail::allocate_frame(200);
  pysock::detail::deallocate_frame(a, 200);
  void* b = pysock::detail::allocate_frame(230);  // same 193..256-byte class
  EXPECT_EQ(a, b) << "a recycled frame should be reused without going to malloc";
  pysock::detail::deallocate_frame(b, 230);
#endif
}

// Classes are 64 bytes apart below 1 KiB: a 368-byte connection handler
// takes a 384-byte block, not a 512-byte one.
TEST(task, frame_classes_are_64_bytes_apart_below_one_kibibyte) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer build: frames come from malloc so use-after-free is detected";
#else
  void* a = pysock::detail::allocate_frame(368);
  pysock::detail::deallocate_frame(a, 368);
  void* b = pysock::detail::allocate_frame(390);  // the next class: not a's block
  EXPECT_NE(a, b);
  void* c = pysock::detail::allocate_frame(330);  // a's class, 321..384
  EXPECT_EQ(a, c);
  pysock::detail::deallocate_frame(b, 390);
  pysock::detail::deallocate_frame(c, 330);
  // Larger frames still come from the cache, by powers of two.
  void* d = pysock::detail::allocate_frame(3000);
  pysock::detail::deallocate_frame(d, 3000);
  void* e = pysock::detail::allocate_frame(4096);
  EXPECT_EQ(d, e);
  pysock::detail::deallocate_frame(e, 4096);
#endif
}

TEST(task, create_task_runs_concurrently_and_handle_gives_the_result) {
  auto body = []() -> task<std::vector<int>> {
    std::vector<int> log;
    auto a = pysock::create_task(sleeper(30ms, log, 1));
    auto b = pysock::create_task(sleeper(10ms, log, 2));
    EXPECT_FALSE(a.done());
    co_await a;
    co_await b;
    EXPECT_TRUE(a.done());
    EXPECT_FALSE(a.cancelled());
    co_return log;
  };
  EXPECT_EQ(pysock::run(body()), (std::vector<int>{2, 1}));
}

TEST(task, result_of_a_pending_task_is_invalid_state_error) {
  auto body = []() -> task<void> {
    auto h = pysock::create_task(slow_value(10ms, 5));
    EXPECT_THROW(h.result(), pysock::invalid_state_error);
    EXPECT_EQ(co_await h, 5);
    EXPECT_EQ(h.result(), 5);
  };
  pysock::run(body());
}

TEST(task, cancel_before_start_never_runs_the_body) {
  auto body = []() -> task<void> {
    bool ran = false;
    auto h = pysock::create_task(answer(ran));
    EXPECT_TRUE(h.cancel());
    EXPECT_THROW(co_await h, pysock::cancelled_error);
    EXPECT_FALSE(ran);
    EXPECT_TRUE(h.cancelled());
    EXPECT_FALSE(h.cancel()) << "cancel() of a finished task returns false";
  };
  pysock::run(body());
}

TEST(task, cancel_is_thrown_at_the_suspension_point_and_can_be_caught) {
  auto victim = [](bool& saw) -> task<int> {
    try {
      co_await pysock::sleep(10s);
    } catch (const pysock::cancelled_error&) {
      saw = true;
      co_return -1;  // swallowing the cancellation: the task ends normally
    }
    co_return 1;
  };
  auto body = [&]() -> task<void> {
    bool saw = false;
    auto h = pysock::create_task(victim(saw));
    co_await pysock::sleep(5ms);
    EXPECT_TRUE(h.cancel());
    EXPECT_EQ(co_await h, -1);
    EXPECT_TRUE(saw);
    EXPECT_FALSE(h.cancelled());
  };
  const auto start = std::chrono::steady_clock::now();
  pysock::run(body());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s)
      << "the 10 s sleep should have been cut short";
}

TEST(task, cancelling_a_task_that_awaits_another_cancels_that_one_too) {
  auto body = []() -> task<void> {
    auto inner = pysock::create_task(slow_value(10s, 1));
    auto outer_fn = [](pysock::task_handle<int> h) -> task<int> { co_return co_await h; };
    auto outer = pysock::create_task(outer_fn(inner));
    co_await pysock::sleep(5ms);
    outer.cancel();
    EXPECT_THROW(co_await outer, pysock::cancelled_error);
    EXPECT_TRUE(inner.done());
    EXPECT_TRUE(inner.cancelled());
  };
  pysock::run(body());
}

TEST(task, gather_returns_results_in_argument_order) {
  auto body = []() -> task<std::tuple<int, int, std::monostate>> {
    std::vector<int> log;
    co_return co_await pysock::gather(slow_value(30ms, 1), slow_value(5ms, 2),
                                      sleeper(15ms, log, 3));
  };
  const auto [a, b, c] = pysock::run(body());
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  (void)c;
}

TEST(task, gather_runs_its_tasks_concurrently) {
  // Counted, not timed: run in sequence, no two sleeps would overlap
  // (a wall-clock bound fails on a loaded machine).
  struct overlap {
    int sleeping = 0;
    int most = 0;
  };
  auto counted = [](overlap& o, int v) -> task<int> {
    o.most = std::max(o.most, ++o.sleeping);
    co_await pysock::sleep(50ms);
    --o.sleeping;
    co_return v;
  };
  auto body = [&counted]() -> task<void> {
    overlap o;
    std::vector<task<int>> tasks;
    for (int i = 0; i < 50; ++i) tasks.push_back(counted(o, i));
    const auto results = co_await pysock::gather(std::move(tasks));
    EXPECT_EQ(o.most, 50) << "the gathered tasks did not all sleep at the same time";
    EXPECT_EQ(o.sleeping, 0);
    EXPECT_EQ(results.size(), 50u);
    if (results.size() != 50u) co_return;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], i);
  };
  pysock::run(body());
}

TEST(task, gather_first_failure_cancels_the_others_and_is_rethrown) {
  auto failing = []() -> task<int> {
    co_await pysock::sleep(5ms);
    throw std::runtime_error("first failure");
  };
  auto body = [&]() -> task<void> {
    bool other_cancelled = false;
    auto other = [](bool& flag) -> task<int> {
      try {
        co_await pysock::sleep(10s);
      } catch (const pysock::cancelled_error&) {
        flag = true;
        throw;
      }
      co_return 0;
    };
    try {
      co_await pysock::gather(failing(), other(other_cancelled));
      ADD_FAILURE() << "gather should have thrown";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "first failure");
    }
    EXPECT_TRUE(other_cancelled)
        << "the sibling must be cancelled and finished before gather returns";
  };
  pysock::run(body());
}

TEST(task, cancelling_a_gather_cancels_every_child) {
  auto body = []() -> task<void> {
    std::vector<int> log;
    auto g = pysock::create_task(pysock::gather(sleeper(10s, log, 1), sleeper(10s, log, 2)));
    co_await pysock::sleep(5ms);
    g.cancel();
    EXPECT_THROW(co_await g, pysock::cancelled_error);
    EXPECT_TRUE(log.empty());
    // Only this body is left: the gather and its children have all ended.
    EXPECT_EQ(pysock::get_running_loop().pending_task_count(), 1u)
        << "children must not outlive the gather";
  };
  pysock::run(body());
}

TEST(task, wait_for_timeout_raises_timeout_error_and_cancels_the_inner_task) {
  auto body = []() -> task<void> {
    bool inner_cancelled = false;
    auto inner = [](bool& flag) -> task<int> {
      try {
        co_await pysock::sleep(10s);
      } catch (const pysock::cancelled_error&) {
        flag = true;
        throw;
      }
      co_return 1;
    };
    const auto start = std::chrono::steady_clock::now();
    try {
      co_await pysock::wait_for(inner(inner_cancelled), 20ms);
      ADD_FAILURE() << "expected timeout_error";
    } catch (const pysock::timeout_error& e) {
      EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 20ms);
    EXPECT_LT(took, 3s);
    EXPECT_TRUE(inner_cancelled);
  };
  pysock::run(body());
}

TEST(task, wait_for_returns_the_value_when_in_time) {
  auto body = []() -> task<int> { co_return co_await pysock::wait_for(slow_value(5ms, 7), 5s); };
  EXPECT_EQ(pysock::run(body()), 7);
}

TEST(task, wait_for_passes_the_inner_exception_through) {
  auto body = []() -> task<int> { co_return co_await pysock::wait_for(thrower(), 5s); };
  EXPECT_THROW(pysock::run(body()), std::runtime_error);
}

TEST(task, event_wakes_every_waiter_and_wait_returns_at_once_when_set) {
  auto body = []() -> task<void> {
    pysock::event ev;
    int woken = 0;
    auto waiter = [](pysock::event& e, int& count) -> task<void> {
      co_await e.wait();
      ++count;
    };
    auto a = pysock::create_task(waiter(ev, woken));
    auto b = pysock::create_task(waiter(ev, woken));
    co_await pysock::sleep(5ms);
    EXPECT_EQ(woken, 0);
    ev.set();
    co_await a;
    co_await b;
    EXPECT_EQ(woken, 2);
    co_await ev.wait();  // set: no wait
    ev.clear();
    EXPECT_FALSE(ev.is_set());
  };
  pysock::run(body());
}

TEST(task, cancelling_an_event_waiter_unlinks_it) {
  auto body = []() -> task<void> {
    pysock::event ev;
    auto h = pysock::create_task([](pysock::event& e) -> task<void> { co_await e.wait(); }(ev));
    co_await pysock::sleep(5ms);
    h.cancel();
    EXPECT_THROW(co_await h, pysock::cancelled_error);
    ev.set();  // must not touch the cancelled waiter
  };
  pysock::run(body());
}

TEST(task, pending_tasks_are_destroyed_with_the_loop) {
  bool destroyed = false;
  struct flag_on_destroy {
    bool* flag;
    ~flag_on_destroy() { *flag = true; }
  };
  {
    pysock::event_loop loop;
    auto body = [](bool* flag) -> task<void> {
      flag_on_destroy guard{flag};
      co_await pysock::sleep(10s);
    };
    auto h = loop.create_task(body(&destroyed));
    loop.run_until_complete([]() -> task<void> { co_await pysock::sleep(5ms); }());
    EXPECT_FALSE(destroyed);
    EXPECT_EQ(loop.pending_task_count(), 1u);
  }
  EXPECT_TRUE(destroyed) << "the loop's destructor must destroy the frames of pending tasks";
}

TEST(task, run_until_complete_stopped_early_is_an_error) {
  pysock::event_loop loop;
  loop.call_later(5ms, [&] { loop.stop(); });
  EXPECT_THROW(loop.run_until_complete(slow_value(10s, 1)), std::runtime_error);
}
