// SPDX-License-Identifier: MIT
//
// pysock/select.hpp — Python's `select` module: select(), poll objects, and
// epoll objects (Linux), kqueue/kevent (BSD, macOS) or devpoll (Solaris).
//
//   import select                              #include <pysock/select.hpp>
//   r, w, x = select.select([s, 5], [], [], 1) auto [r, w, x] = pysock::select({&s, 5}, {}, {},
//   1s); p = select.poll()                          auto p = pysock::poll(); p.register(s,
//   select.POLLIN)               p.register_(s, POLLIN); for fd, ev in p.poll(1000): ... for (auto
//   [fd, ev] : p.poll(1000)) ... ep = select.epoll()                        pysock::epoll ep;
//   ep.register(fd, select.EPOLLIN)            ep.register_(fd, EPOLLIN);
//   for fd, ev in ep.poll(0.5): ...            for (auto [fd, ev] : ep.poll(500ms)) ...
//
// Spelling: `register` is a C++ keyword, so every registration method in pysock
// (poll, epoll and the selectors) is `register_`, the trailing underscore being
// PEP 8's own convention for a name that clashes with a keyword (`class_`).
//
// Constants are the system's own macros: POLLIN, POLLOUT, POLLPRI, POLLERR,
// POLLHUP, POLLNVAL, POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLMSG,
// POLLRDHUP; EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLERR, EPOLLHUP, EPOLLRDNORM,
// EPOLLRDBAND, EPOLLWRNORM, EPOLLWRBAND, EPOLLMSG, EPOLLRDHUP, EPOLLEXCLUSIVE,
// EPOLLONESHOT, EPOLLET, EPOLL_CLOEXEC; FD_SETSIZE and PIPE_BUF.
//
// Errors (Python → pysock):
//   OSError family        → pysock::os_error and subclasses (pysock/error.hpp)
//   ValueError            → std::invalid_argument
//   OverflowError         → std::out_of_range
//   KeyError              → pysock::key_error (a std::out_of_range, as std::map::at)
//   RuntimeError          → std::runtime_error
//
// Timeouts: each call takes a std::chrono duration or std::nullopt (block), with
// the unit rules of the Python call it mirrors: select() rejects negative
// timeouts, poll and epoll treat a negative timeout as "block". Durations are
// rounded *up* to the resolution of the system call (µs for select, ms for
// poll/epoll), so a wait never ends early. Every wait retries on EINTR with
// the time remaining (PEP 475) and returns "nothing ready" once that is gone.
//
// kqueue/kevent (BSD, macOS) and devpoll (Solaris) are declared only on those
// systems (below, under their own #if blocks; implemented in
// src/kqueue_bsd.cpp and src/devpoll_solaris.cpp). They were written against
// the man pages and CPython's Modules/selectmodule.c, and are compiled and
// tested only on those platforms, not in this project's Linux CI.
#pragma once

#include <limits.h>
#include <poll.h>
#include <sys/select.h>
#if defined(__linux__)
#include <sys/epoll.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(__DragonFly__)
#include <sys/types.h>  // first: older BSD and Solaris headers below need it

#include <sys/event.h>
#include <sys/time.h>

#include <compare>
#include <initializer_list>
#endif
#if defined(__sun)
#include <sys/devpoll.h>
#endif

#include <atomic>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "pysock/error.hpp"
#include "pysock/socket.hpp"

namespace pysock {

/// Python's KeyError: a lookup by key failed (poll.unregister of an unknown
/// fd, a selector asked about an object it does not hold). It derives from
/// std::out_of_range, the standard library's own "no such key" (std::map::at).
class key_error : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

// ---------------------------------------------------------------------------
// What can be waited on
// ---------------------------------------------------------------------------

/// A socket or a raw descriptor, as Python's select functions accept "an int
/// or an object with fileno()". It keeps the *identity* of what it was made
/// from: a socket is held by address, so a result compares equal to the very
/// object that was passed in (Python's `rsock is sock`). The socket must
/// outlive the selectable.
class selectable {
 public:
  /// A raw descriptor (validated by the call that uses it: negative →
  /// std::invalid_argument).
  constexpr selectable(int fd) noexcept : fd_(fd) {}
  /// A socket, by identity. fileno() follows the socket: -1 once it is closed.
  selectable(const socket& sock) noexcept : sock_(&sock) {}
  /// A socket by pointer; a null pointer is an invalid descriptor (-1).
  selectable(const socket* sock) noexcept : sock_(sock) {}

  /// The descriptor now: the int, or the socket's current fileno().
  int fileno() const noexcept { return sock_ ? sock_->fileno() : fd_; }
  /// The socket this was made from, or nullptr for a raw descriptor.
  const socket* sock() const noexcept { return sock_; }
  bool is_socket() const noexcept { return sock_ != nullptr; }

  /// Identity, not descriptor equality: two selectables are equal when made
  /// from the same socket object, or from the same int.
  friend bool operator==(const selectable&, const selectable&) noexcept = default;

 private:
  const socket* sock_ = nullptr;
  int fd_ = -1;
};

/// Anything select() takes as a list element: an integer descriptor, an
/// object with a `fileno()` member (pysock::socket, pysock::selectable, your
/// own types), or a pointer / smart pointer to one.
template <class T>
concept fileno_source = (std::integral<T> && !std::same_as<T, bool>) || requires(const T& x) {
  { x.fileno() } -> std::convertible_to<int>;
}
|| requires(const T& x) {
  { x->fileno() } -> std::convertible_to<int>;
};

/// The descriptor of a list element (Python's `_fileobj_to_fd` without the
/// checks): a null pointer gives -1, which the caller rejects as negative.
template <fileno_source T>
int fileno_of(const T& obj) {
  if constexpr (std::integral<T>) {
    // An integer wider than int cannot be a descriptor; map it to -1 so that
    // the caller's "negative descriptor" check rejects it instead of truncating.
    if constexpr (std::is_signed_v<T>) {
      if (obj < 0) return -1;
    }
    if (static_cast<unsigned long long>(obj) > static_cast<unsigned long long>(INT_MAX)) return -1;
    return static_cast<int>(obj);
  } else if constexpr (requires { obj.fileno(); }) {
    return static_cast<int>(obj.fileno());
  } else {
    return obj ? static_cast<int>(obj->fileno()) : -1;
  }
}

// ---------------------------------------------------------------------------
// select()
// ---------------------------------------------------------------------------

/// A wait timeout: std::nullopt blocks. (Same type as socket timeouts.)
using wait_timeout = timeout_type;

namespace detail {
/// A duration as a wait timeout, rounded up to whole nanoseconds so that a
/// fractional duration (0.5e-9 s) never becomes a shorter wait.
template <class Rep, class Period>
wait_timeout to_wait_timeout(std::chrono::duration<Rep, Period> d) {
  if constexpr (std::is_floating_point_v<Rep>) {
    using ns_ld = std::chrono::duration<long double, std::nano>;
    const long double count = std::chrono::duration_cast<ns_ld>(d).count();
    constexpr long double limit = 9.2e18L;  // keep the cast defined
    const long double clamped = count > limit ? limit : (count < -limit ? -limit : count);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(clamped)));
  } else {
    return std::chrono::ceil<std::chrono::nanoseconds>(d);
  }
}

/// The ready sets of one select() call.
struct select_ready {
  fd_set read;
  fd_set write;
  fd_set except;
};

/// select() over descriptor lists: validates them (negative → invalid_argument,
/// ≥ FD_SETSIZE → invalid_argument "filedescriptor out of range in select()",
/// more than FD_SETSIZE entries in one list → "too many file descriptors in
/// select()", negative timeout → "timeout must be non-negative"), waits with
/// EINTR retry, and fills `ready` (all empty when the time ran out).
void select_descriptors(std::span<const int> rfds, std::span<const int> wfds,
                        std::span<const int> xfds, wait_timeout timeout, select_ready& ready);

/// FD_ISSET without the macro in user code (glibc's FD_* macros trip
/// -Wsign-conversion in some versions; they stay in one translation unit).
bool fd_isset(const fd_set& set, int fd) noexcept;

/// The persistent interest sets of a select_selector: descriptors to watch for
/// reading and for writing, with the highest one tracked for nfds.
class select_interest {
 public:
  select_interest() noexcept;
  /// Sets the interest of `fd` (0 ≤ fd < FD_SETSIZE, checked by the caller).
  void set(int fd, bool read, bool write) noexcept;
  void clear(int fd) noexcept { set(fd, false, false); }
  int max_fd() const noexcept { return max_fd_; }
  /// One select() over the sets (EINTR retried with the remaining time; a
  /// negative or zero timeout polls). `ready` receives the ready sets; returns
  /// the number of ready descriptors, 0 on timeout.
  int wait(wait_timeout timeout, select_interest& ready) const;
  bool readable(int fd) const noexcept { return fd_isset(read_, fd); }
  bool writable(int fd) const noexcept { return fd_isset(write_, fd); }

 private:
  fd_set read_;
  fd_set write_;
  int max_fd_ = -1;
};

/// ::poll() over `fds` with EINTR retried on the remaining time. std::nullopt
/// blocks; a duration (≥ 0) is rounded up to whole milliseconds. Returns the
/// number of entries with revents set (0 on timeout); throws os_error.
std::size_t poll_descriptors(pollfd* fds, std::size_t count, wait_timeout timeout);
}  // namespace detail

/// The result of select(): the ready subsets of the three lists, in the order
/// given and holding the same elements (`auto [r, w, x] = pysock::select(...)`).
template <class T>
struct select_result {
  std::vector<T> r;
  std::vector<T> w;
  std::vector<T> x;
};

/// Python's select.select(rlist, wlist, xlist, timeout): waits until some of
/// the descriptors are ready for reading, writing, or have an exceptional
/// condition (TCP urgent data), or until `timeout` passes (std::nullopt:
/// forever; empty lists just sleep).
///
/// Elements are ints, sockets by pointer (`&sock`), pysock::selectable (the
/// default: mixes both, `{&listener, 5}`) or any type with `fileno()`. The
/// result holds copies of the ready elements — the same pointers and ints, so
/// identity is kept — in input order; duplicates stay duplicates.
///
/// @throws std::invalid_argument a negative descriptor (a closed socket's -1),
///   one ≥ FD_SETSIZE ("filedescriptor out of range in select()"), more than
///   FD_SETSIZE entries in a list, a negative timeout.
/// @throws os_error EBADF for a descriptor that is not open.
template <fileno_source T = selectable>
select_result<T> select(const std::vector<T>& rlist, const std::vector<T>& wlist,
                        const std::vector<T>& xlist, wait_timeout timeout = std::nullopt) {
  // Descriptors are read once, before the wait, and the results are matched
  // on those values: a fileno() that changes meanwhile cannot mismatch.
  auto fds_of = [](const std::vector<T>& list) {
    std::vector<int> fds;
    fds.reserve(list.size());
    for (const T& item : list) fds.push_back(fileno_of(item));
    return fds;
  };
  const std::vector<int> rfds = fds_of(rlist), wfds = fds_of(wlist), xfds = fds_of(xlist);
  detail::select_ready ready;
  detail::select_descriptors(rfds, wfds, xfds, timeout, ready);
  auto pick = [](const std::vector<T>& list, const std::vector<int>& fds, const fd_set& set) {
    std::vector<T> out;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (detail::fd_isset(set, fds[i])) out.push_back(list[i]);
    return out;
  };
  return {pick(rlist, rfds, ready.read), pick(wlist, wfds, ready.write),
          pick(xlist, xfds, ready.except)};
}

/// select() with any duration (`1.5s`, `std::chrono::duration<double>(0.2)`).
template <fileno_source T = selectable, class Rep, class Period>
select_result<T> select(const std::vector<T>& rlist, const std::vector<T>& wlist,
                        const std::vector<T>& xlist, std::chrono::duration<Rep, Period> timeout) {
  return select<T>(rlist, wlist, xlist, detail::to_wait_timeout(timeout));
}

/// One ready descriptor as poll objects and epoll objects report it: Python's
/// `(fd, events)` pair (`for (auto [fd, events] : ep.poll())`).
struct ready_event {
  int fd = -1;
  std::uint32_t events = 0;
  friend bool operator==(const ready_event&, const ready_event&) noexcept = default;
};

// ---------------------------------------------------------------------------
// poll
// ---------------------------------------------------------------------------

/// Python's `select.poll` object: a set of (descriptor, event mask) pairs kept
/// in user space and handed to poll(2) on each wait. (The class is not named
/// `poll` because its wait method is: C++ forbids a member named as its class.
/// pysock::poll() makes one, as Python's select.poll() does.)
///
/// Registration makes no system call, so a bad descriptor is accepted and
/// later reported as POLLNVAL, as in Python. Not thread-safe, except that two
/// threads polling at once get std::runtime_error("concurrent poll()
/// invocation") instead of a data race, as in Python.
class poll_object {
 public:
  poll_object() = default;
  poll_object(const poll_object&) = delete;
  poll_object& operator=(const poll_object&) = delete;

  /// Watches `fd` for `eventmask` (POLLIN | POLLPRI | POLLOUT by default).
  /// Registering again replaces the mask silently, as in Python.
  /// @throws std::invalid_argument a negative descriptor.
  /// @throws std::out_of_range a mask that does not fit 16 bits (OverflowError).
  void register_(selectable fd, unsigned eventmask = POLLIN | POLLPRI | POLLOUT);
  /// Changes the mask of a registered descriptor.
  /// @throws file_not_found_error (ENOENT) when `fd` is not registered.
  void modify(selectable fd, unsigned eventmask);
  /// Stops watching `fd`. @throws key_error when it is not registered.
  void unregister(selectable fd);

  /// Waits at most `timeout` (std::nullopt or a negative duration: forever;
  /// rounded up to ms) and returns the ready descriptors with their revents,
  /// which may include POLLERR, POLLHUP and POLLNVAL (closed fd) unasked.
  std::vector<ready_event> poll(wait_timeout timeout = std::nullopt);
  /// Python's unit: milliseconds; negative blocks, as `p.poll(-1)`.
  std::vector<ready_event> poll(int timeout_ms);
  template <class Rep, class Period>
  std::vector<ready_event> poll(std::chrono::duration<Rep, Period> timeout) {
    return poll(detail::to_wait_timeout(timeout));
  }
  /// The allocation-free wait for servers: copies up to ready.size() ready
  /// entries (fd, registered events, revents) into `ready` and returns their
  /// count. Entries that did not fit stay ready for the next call (poll is
  /// level-triggered).
  std::size_t poll(std::span<pollfd> ready, wait_timeout timeout = std::nullopt);

  /// The number of registered descriptors.
  std::size_t size() const noexcept { return fds_.size(); }

 private:
  std::size_t wait(wait_timeout timeout);

  std::vector<pollfd> fds_;                     // what poll(2) gets, in one block
  std::unordered_map<int, std::size_t> index_;  // fd → position in fds_
  std::atomic<bool> polling_{false};
};

/// Python's select.poll(): a new, empty poll object.
poll_object poll();

// ---------------------------------------------------------------------------
// epoll (Linux)
// ---------------------------------------------------------------------------
#if defined(__linux__)

/// Python's `select.epoll` object: owns an epoll descriptor (always
/// close-on-exec). Move-only; a moved-from or closed object throws
/// std::invalid_argument("I/O operation on closed epoll object") from every
/// call except close() and closed().
///
/// Kernel fact worth knowing: epoll watches the *open file description*, not
/// the number. A descriptor closed while another dup() of it stays open keeps
/// its registration, and events keep arriving under the old number.
class epoll {
 public:
  /// `sizehint` must be -1 or positive (std::invalid_argument otherwise) and
  /// is otherwise ignored, as is `flags`, which may only be 0 or
  /// EPOLL_CLOEXEC (os_error "invalid flags" otherwise, EINVAL).
  explicit epoll(int sizehint = -1, int flags = 0);
  /// Python's epoll.fromfd(fd): *adopts* `fd` (no dup). Two objects on one
  /// descriptor is what Python gives too; closing one breaks the other (EBADF).
  static epoll fromfd(int fd);

  epoll(epoll&& other) noexcept;
  epoll& operator=(epoll&& other) noexcept;
  epoll(const epoll&) = delete;
  epoll& operator=(const epoll&) = delete;
  ~epoll() { close(); }

  /// Closes the descriptor; idempotent. Never throws: as in Python, an error
  /// from close(2) is not reported (and close is never retried on EINTR).
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  int fileno() const;

  /// EPOLL_CTL_ADD with data.fd = fd (EPOLLIN | EPOLLPRI | EPOLLOUT by default).
  /// @throws file_exists_error (EEXIST) registered twice; permission_error
  ///   (EPERM) a regular file or directory; os_error EBADF a closed
  ///   descriptor; std::invalid_argument a negative one.
  void register_(selectable fd, std::uint32_t eventmask = EPOLLIN | EPOLLPRI | EPOLLOUT);
  /// The same with your own epoll_data (an index or a pointer for servers
  /// that dispatch without a lookup). Events then carry that data; read them
  /// with the std::span<epoll_event> form of poll().
  void register_(selectable fd, std::uint32_t eventmask, epoll_data_t data);
  /// EPOLL_CTL_MOD (re-arms an EPOLLONESHOT registration).
  /// @throws file_not_found_error (ENOENT) when `fd` is not registered.
  void modify(selectable fd, std::uint32_t eventmask);
  void modify(selectable fd, std::uint32_t eventmask, epoll_data_t data);
  /// EPOLL_CTL_DEL. @throws file_not_found_error (ENOENT) when not
  /// registered, os_error EBADF when `fd` was already closed.
  void unregister(selectable fd);

  /// Waits at most `timeout` (std::nullopt or negative: forever; rounded up to
  /// ms) for up to `maxevents` events (-1: FD_SETSIZE - 1, as Python) and
  /// returns them as (fd, events). Assumes data.fd registrations (the
  /// two-argument register_).
  /// @throws std::invalid_argument maxevents 0 or < -1.
  std::vector<ready_event> poll(wait_timeout timeout = std::nullopt, int maxevents = -1);
  template <class Rep, class Period>
  std::vector<ready_event> poll(std::chrono::duration<Rep, Period> timeout, int maxevents = -1) {
    return poll(detail::to_wait_timeout(timeout), maxevents);
  }
  /// The allocation-free wait for servers: the kernel writes straight into
  /// `events` (at most events.size(), which must be ≥ 1); returns the count.
  std::size_t poll(std::span<epoll_event> events, wait_timeout timeout = std::nullopt);
  /// Non-throwing form: on failure sets `ec` and returns 0.
  std::size_t poll(std::span<epoll_event> events, wait_timeout timeout,
                   std::error_code& ec) noexcept;

 private:
  struct adopt_tag {};
  epoll(adopt_tag, int fd) noexcept : fd_(fd) {}
  int checked_fd() const;
  void control(int op, const char* what, selectable fd, std::uint32_t eventmask, epoll_data_t data);

  int fd_ = -1;
};

#endif  // __linux__

// ---------------------------------------------------------------------------
// kqueue / kevent (BSD, macOS)
// ---------------------------------------------------------------------------
// NOT COMPILED in this project's Linux CI: written against kqueue(2)/kevent(2)
// (FreeBSD, macOS, OpenBSD, NetBSD, DragonFly) and CPython's selectmodule.c.
// Field types are taken from the system's struct kevent with decltype, so
// they are exact on every one of those systems (e.g. filter is int16_t on
// macOS but uint32_t on NetBSD; data is intptr_t on macOS, int64_t on FreeBSD
// 12+; udata is void* except intptr_t on NetBSD before 10).
//
// Python's constants are the system's macros: KQ_FILTER_READ → EVFILT_READ,
// KQ_FILTER_WRITE → EVFILT_WRITE, KQ_FILTER_* → EVFILT_*, KQ_EV_ADD → EV_ADD,
// KQ_EV_* → EV_* (DELETE, ENABLE, DISABLE, ONESHOT, CLEAR, EOF, ERROR, ...),
// KQ_NOTE_* → NOTE_*.
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(__DragonFly__)

namespace detail {
/// The system's struct kevent (the function of the same name hides the tag).
using kevent_raw = struct ::kevent;
}  // namespace detail

/// Python's `select.kevent(ident, filter=KQ_FILTER_READ, flags=KQ_EV_ADD,
/// fflags=0, data=0, udata=0)`: one change or one event, with the fields of
/// struct kevent under their own names. Compares as Python's does: by
/// (ident, filter, flags, fflags, data, udata), udata as an integer.
struct kevent {
  using ident_type = decltype(detail::kevent_raw::ident);    // uintptr_t
  using filter_type = decltype(detail::kevent_raw::filter);  // short / int16_t (NetBSD: uint32_t)
  using flags_type = decltype(detail::kevent_raw::flags);    // u_short (NetBSD: uint32_t)
  using fflags_type = decltype(detail::kevent_raw::fflags);  // u_int
  using data_type = decltype(detail::kevent_raw::data);      // intptr_t / int64_t
  using udata_type = decltype(detail::kevent_raw::udata);    // void* (old NetBSD: intptr_t)

  ident_type ident = 0;
  filter_type filter = static_cast<filter_type>(EVFILT_READ);
  flags_type flags = static_cast<flags_type>(EV_ADD);
  fflags_type fflags = 0;
  data_type data = 0;
  udata_type udata{};

  kevent() = default;

  /// `ident` is an integer (a descriptor, a pid, a signal number, a timer
  /// id: used as is; negative → std::out_of_range, Python's OverflowError) or
  /// an object with fileno() (a socket: its descriptor; negative →
  /// std::invalid_argument).
  template <fileno_source T>
  explicit kevent(const T& id, filter_type filt = static_cast<filter_type>(EVFILT_READ),
                  flags_type fl = static_cast<flags_type>(EV_ADD), fflags_type ffl = 0,
                  data_type dat = 0, udata_type ud = udata_type{})
      : ident(ident_of(id)), filter(filt), flags(fl), fflags(ffl), data(dat), udata(ud) {}

  /// From / to the system's struct (other fields, such as FreeBSD's ext[],
  /// are zero).
  static kevent from_raw(const detail::kevent_raw& r) noexcept {
    kevent k;
    k.ident = r.ident;
    k.filter = r.filter;
    k.flags = r.flags;
    k.fflags = r.fflags;
    k.data = r.data;
    k.udata = r.udata;
    return k;
  }
  detail::kevent_raw raw() const noexcept {
    detail::kevent_raw r{};
    r.ident = ident;
    r.filter = filter;
    r.flags = flags;
    r.fflags = fflags;
    r.data = data;
    r.udata = udata;
    return r;
  }

  friend bool operator==(const kevent& a, const kevent& b) noexcept {
    return a.ident == b.ident && a.filter == b.filter && a.flags == b.flags &&
           a.fflags == b.fflags && a.data == b.data && udata_bits(a.udata) == udata_bits(b.udata);
  }
  friend std::strong_ordering operator<=>(const kevent& a, const kevent& b) noexcept {
    if (auto c = a.ident <=> b.ident; c != 0) return c;
    if (auto c = a.filter <=> b.filter; c != 0) return c;
    if (auto c = a.flags <=> b.flags; c != 0) return c;
    if (auto c = a.fflags <=> b.fflags; c != 0) return c;
    if (auto c = a.data <=> b.data; c != 0) return c;
    return udata_bits(a.udata) <=> udata_bits(b.udata);
  }

 private:
  // A template so that the branch not taken is discarded (udata is a
  // pointer on most systems, an integer on NetBSD before 10).
  template <class U>
  static std::uintptr_t udata_bits(U u) noexcept {
    if constexpr (std::is_pointer_v<U>) {
      return reinterpret_cast<std::uintptr_t>(u);
    } else {
      return static_cast<std::uintptr_t>(u);
    }
  }
  template <fileno_source T>
  static ident_type ident_of(const T& id) {
    if constexpr (std::integral<T>) {
      if constexpr (std::is_signed_v<T>) {
        if (id < 0) throw std::out_of_range("kevent ident must not be negative");
      }
      return static_cast<ident_type>(id);
    } else {
      const int fd = fileno_of(id);
      if (fd < 0)
        throw std::invalid_argument("file descriptor cannot be a negative integer (" +
                                    std::to_string(fd) + ")");
      return static_cast<ident_type>(fd);
    }
  }
};

/// Python's `select.kqueue` object: owns a kqueue descriptor, made
/// close-on-exec (PEP 446). Move-only; a moved-from or closed object throws
/// std::invalid_argument("I/O operation on closed kqueue object") from every
/// call except close() and closed().
///
/// Not done: CPython 3.13 invalidates kqueue objects in a forked child (the
/// kernel does not inherit kqueues); here a child must simply not use it.
class kqueue {
 public:
  /// kqueue(2), then FD_CLOEXEC. @throws os_error.
  kqueue();
  /// Python's kqueue.fromfd(fd): *adopts* `fd` (no dup).
  static kqueue fromfd(int fd);

  kqueue(kqueue&& other) noexcept;
  kqueue& operator=(kqueue&& other) noexcept;
  kqueue(const kqueue&) = delete;
  kqueue& operator=(const kqueue&) = delete;
  ~kqueue() { close(); }

  /// Closes the descriptor; idempotent, never throws (not retried on EINTR).
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  int fileno() const;

  /// Python's kq.control(changelist, maxevents, timeout=None): applies the
  /// changes, then waits at most `timeout` (std::nullopt: forever) for up to
  /// `maxevents` events (0: only apply the changes) and returns them. A
  /// change that fails comes back as an event with EV_ERROR and the errno in
  /// `data` when there is room, else as os_error.
  /// @throws std::invalid_argument maxevents < 0 ("Length of eventlist must
  ///   be 0 or positive, got N"), a negative timeout ("timeout must be
  ///   positive or None"), a closed object.
  std::vector<kevent> control(std::span<const kevent> changelist, int maxevents,
                              wait_timeout timeout = std::nullopt);
  std::vector<kevent> control(std::initializer_list<kevent> changelist, int maxevents,
                              wait_timeout timeout = std::nullopt) {
    return control(std::span<const kevent>(changelist.begin(), changelist.size()), maxevents,
                   timeout);
  }
  template <class Rep, class Period>
  std::vector<kevent> control(std::span<const kevent> changelist, int maxevents,
                              std::chrono::duration<Rep, Period> timeout) {
    return control(changelist, maxevents, detail::to_wait_timeout(timeout));
  }
  template <class Rep, class Period>
  std::vector<kevent> control(std::initializer_list<kevent> changelist, int maxevents,
                              std::chrono::duration<Rep, Period> timeout) {
    return control(changelist, maxevents, detail::to_wait_timeout(timeout));
  }
  /// The allocation-free form on the system's structs: the kernel reads
  /// `changes` and writes up to events.size() events into `events`; returns
  /// their count. Same rules and errors as above.
  std::size_t control(std::span<const detail::kevent_raw> changes,
                      std::span<detail::kevent_raw> events, wait_timeout timeout = std::nullopt);

 private:
  struct adopt_tag {};
  kqueue(adopt_tag, int fd) noexcept : fd_(fd) {}
  int checked_fd() const;

  int fd_ = -1;
};

#endif  // kqueue platforms

// ---------------------------------------------------------------------------
// devpoll (Solaris, illumos)
// ---------------------------------------------------------------------------
// NOT COMPILED in this project's Linux CI: written against poll(7d) and
// CPython's selectmodule.c.
#if defined(__sun)

/// Python's `select.devpoll` object: the poll API over /dev/poll (opened
/// close-on-exec). Registrations are *buffered* and written to /dev/poll in
/// one write(2) at the next poll() (or when the buffer is full), so a bad
/// descriptor shows up then, not at register_(). The buffer, shared with
/// poll()'s results as in CPython, holds RLIMIT_NOFILE entries as read at
/// creation (capped at 1 << 20 here, where CPython takes any value).
/// Move-only; a closed object throws std::invalid_argument("I/O operation on
/// closed devpoll object").
class devpoll {
 public:
  /// getrlimit(RLIMIT_NOFILE), open("/dev/poll", O_RDWR | O_CLOEXEC).
  devpoll();
  devpoll(devpoll&& other) noexcept;
  devpoll& operator=(devpoll&& other) noexcept;
  devpoll(const devpoll&) = delete;
  devpoll& operator=(const devpoll&) = delete;
  ~devpoll() { close(); }

  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  int fileno() const;

  /// Watches `fd` for `eventmask` (queued, no system call). Registering an
  /// fd twice is not an error, but /dev/poll ORs the masks (Python documents
  /// the result as undefined); use modify() to replace a mask.
  /// @throws std::invalid_argument negative fd; std::out_of_range a mask
  ///   wider than 16 bits.
  void register_(selectable fd, unsigned eventmask = POLLIN | POLLPRI | POLLOUT);
  /// Replaces the mask: POLLREMOVE, then the new mask (no ENOENT check: an
  /// unknown fd is simply registered, as in Python).
  void modify(selectable fd, unsigned eventmask = POLLIN | POLLPRI | POLLOUT);
  /// Queues a POLLREMOVE for `fd` (no error for an unknown fd).
  void unregister(selectable fd);

  /// Flushes the queued changes and waits (DP_POLL) at most `timeout`
  /// (std::nullopt or -1 ms: forever; rounded up to ms) for up to as many
  /// events as the buffer holds.
  /// @throws std::out_of_range a timeout below -1 ms ("timeout is out of
  ///   range", Python's OverflowError: devpoll, unlike poll, does not take
  ///   every negative value as "block"); std::runtime_error("concurrent
  ///   poll() invocation"); os_error (a bad descriptor queued earlier).
  std::vector<ready_event> poll(wait_timeout timeout = std::nullopt);
  /// Python's unit: milliseconds; -1 blocks.
  std::vector<ready_event> poll(int timeout_ms);
  template <class Rep, class Period>
  std::vector<ready_event> poll(std::chrono::duration<Rep, Period> timeout) {
    return poll(detail::to_wait_timeout(timeout));
  }
  /// The allocation-free wait: the ready entries (fd, revents) in the
  /// object's own buffer, valid until the next call on this object.
  std::span<const pollfd> wait(wait_timeout timeout = std::nullopt);

 private:
  void append(int fd, short events);
  void flush();

  int fd_ = -1;
  std::vector<pollfd> fds_;  // queued changes, then DP_POLL's results
  std::size_t n_fds_ = 0;    // queued changes in fds_
  std::atomic<bool> polling_{false};
};

#endif  // __sun

}  // namespace pysock
