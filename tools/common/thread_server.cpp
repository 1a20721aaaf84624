// SPDX-License-Identifier: MIT
#include "common/thread_server.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <list>
#include <memory>
#include <thread>

namespace pysock::tools {
namespace {

struct worker {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> finished = std::make_shared<std::atomic<bool>>(false);
};

// Joins the workers that have returned (join() is then immediate).
void reap(std::list<worker>& workers) {
  for (auto it = workers.begin(); it != workers.end();) {
    if (it->finished->load()) {
      it->thread.join();
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

int serve_threads(socket& listener, stop_signal& stop, std::size_t max_threads,
                  const connection_handler& handler,
                  const std::function<void(const std::string&)>& errors) {
  listener.setblocking(false);
  // Each finishing worker bumps this eventfd, so the accept loop wakes up
  // when a slot frees while it is at the bound.
  const int freed_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (freed_fd < 0) throw_os_error(last_error(), "eventfd()");
  std::list<worker> workers;
  int signal_number = 0;
  int pause_ms = -1;  // after EMFILE: poll the listener again only after a pause

  while (signal_number == 0) {
    reap(workers);
    const bool room = workers.size() < max_threads;
    std::array<pollfd, 3> fds{{{stop.signal_fd(), POLLIN, 0},
                               {freed_fd, POLLIN, 0},
                               {room && pause_ms < 0 ? listener.fileno() : -1, POLLIN, 0}}};
    const int ready = ::poll(fds.data(), fds.size(), pause_ms);
    pause_ms = -1;
    if (ready < 0) continue;  // EINTR
    if (fds[0].revents != 0) {
      signal_number = stop.take_signal();
      continue;
    }
    if (fds[1].revents != 0) {
      std::uint64_t count;
      [[maybe_unused]] const ssize_t n = ::read(freed_fd, &count, sizeof count);
    }
    if (fds[2].revents == 0) continue;

    std::error_code ec;
    auto [conn, peer] = listener.accept(ec);
    if (ec) {
      if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
          ec == std::errc::not_enough_memory || ec == std::errc::no_buffer_space) {
        errors("accept(): " + ec.message() + " (pausing 100 ms)");
        pause_ms = 100;
      }
      continue;  // EAGAIN (another process took it), ECONNABORTED, EINTR...
    }
    worker w;
    auto finished = w.finished;
    const int stop_fd = stop.event_fd();
    try {
      w.thread = std::thread([&handler, finished, freed_fd, stop_fd, conn = std::move(conn),
                              peer = std::move(peer)]() mutable {
        try {
          handler(std::move(conn), std::move(peer), stop_fd);
        } catch (const std::exception&) {
          // The handler reports its own errors; one connection's failure
          // must not take the server down (std::terminate).
        }
        finished->store(true);
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(freed_fd, &one, sizeof one);
      });
    } catch (const std::system_error& e) {
      errors(std::string("cannot start a thread: ") + e.what());
      continue;  // the connection (moved into the failed lambda or not) is closed
    }
    workers.push_back(std::move(w));
  }

  try {
    listener.close();
  } catch (const os_error&) {
  }
  stop.trigger();
  for (worker& w : workers) w.thread.join();
  ::close(freed_fd);
  return signal_number;
}

}  // namespace pysock::tools
