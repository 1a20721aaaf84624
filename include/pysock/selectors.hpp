// SPDX-License-Identifier: MIT
//
// pysock/selectors.hpp — Python's `selectors` module: high-level I/O
// multiplexing over select(), poll(), epoll (Linux), kqueue (BSD, macOS) and
// /dev/poll (Solaris).
//
//   import selectors                        #include <pysock/selectors.hpp>
//   sel = selectors.DefaultSelector()       pysock::default_selector<conn*> sel;
//   sel.register(sock, EVENT_READ, data)    sel.register_(sock, pysock::EVENT_READ, data);
//   for key, mask in sel.select(timeout):   for (auto& [key, mask] : sel.select(timeout))
//       key.data(key.fileobj, mask)             key.data->on_ready(mask);
//   sel.modify(sock, EVENT_WRITE, data)     sel.modify(sock, pysock::EVENT_WRITE, data);
//   sel.unregister(sock)                    sel.unregister(sock);
//
// Typed user data. Every selector is a class template on the type of
// `key.data` (default std::any, Python's "any object"). A server names its own
// type — a pointer, an index, a small handle — and gets it back from each event
// with no type erasure, no cast and no allocation: `select()` returns a span
// of (key reference, events) built in a reused buffer, and the epoll selector
// finds each key by indexing a vector with the event's descriptor. The
// selectors are concrete types sharing one implementation through CRTP (no
// virtual call per event); `pysock::selector<Data>` is an optional
// runtime-polymorphic interface over them for code that wants to choose at
// run time.
//
// Errors (Python → pysock):
//   KeyError      → pysock::key_error   registering a descriptor twice (through
//                                        any object), unregister/modify/get_key
//                                        of an object that is not registered
//   ValueError    → std::invalid_argument  events 0 or not ⊆ READ|WRITE
//                                        ("Invalid events: 4"), a negative
//                                        descriptor ("Invalid file descriptor:
//                                        -1"), select_selector: fd ≥ FD_SETSIZE
//   RuntimeError  → std::runtime_error   any call but close()/closed() on a
//                                        closed selector ("Selector is closed").
//                                        (Python's select/poll selectors keep
//                                        working after close; pysock refuses.)
//   OSError       → pysock::os_error      from the kernel: register of a regular
//                                        file on epoll (permission_error), ...
//
// Python's rules kept as they are:
// - unregister() finds a socket that was closed since it was registered by
//   object identity, and swallows the OSError of a descriptor already closed.
// - A failed registration leaves no key; a failed modify removes the key
//   (bpo-30014). modify() with the same events only replaces the data and
//   makes no system call.
// - select(): std::nullopt blocks, a timeout ≤ 0 polls, > 0 waits (rounded up
//   to µs for select, ms for poll/epoll); EINTR is retried with the time left
//   (PEP 475). Events are EVENT_READ/EVENT_WRITE masked with key.events; for
//   poll/epoll any bit other than IN counts as WRITE and any bit other than
//   OUT as READ (so HUP/ERR wake both directions).
//
// Differences, by design:
// - modify(fileobj, events) without data keeps the key's data (Python would
//   reset it to None, which is almost never wanted). Pass Data{} to clear it.
// - A key refers to the object by address: keep a registered socket where it
//   is (do not move the pysock::socket object) while it is registered.
// - Keys returned by select() stay valid until the next select() or close(),
//   even if they are unregistered meanwhile (their data is then moved-from).
// - Not thread-safe (nor is Python's); use one selector per thread.
#pragma once

#include <algorithm>
#include <any>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pysock/select.hpp"

namespace pysock {

/// Python's selectors.EVENT_READ / EVENT_WRITE.
inline constexpr unsigned EVENT_READ = 1u << 0;
inline constexpr unsigned EVENT_WRITE = 1u << 1;

/// Python's SelectorKey(fileobj, fd, events, data).
template <class Data = std::any>
struct selector_key {
  selectable fileobj{-1};  ///< what was registered (socket by identity, or an int)
  int fd = -1;             ///< its descriptor at registration
  unsigned events = 0;     ///< EVENT_READ | EVENT_WRITE
  Data data{};             ///< yours
};

/// One entry of select()'s result: Python's `(key, mask)` pair, with `key`
/// a reference to the selector's key (`for (auto& [key, mask] : sel.select())`).
template <class Data = std::any>
struct selector_event {
  const selector_key<Data>& key;
  unsigned events;
};

namespace detail {

// Non-template pieces (src/selectors.cpp): the checks and messages.
void check_selector_events(unsigned events);  // "Invalid events: N"
int selector_fd(const selectable& fileobj);   // "Invalid file descriptor: N"
void check_select_fd(int fd);                 // fd < FD_SETSIZE
[[noreturn]] void throw_already_registered(const selectable& fileobj, int fd);
[[noreturn]] void throw_not_registered(const selectable& fileobj);
[[noreturn]] void throw_selector_closed();
/// nullopt stays "block"; a negative duration becomes 0 ("poll").
wait_timeout selector_timeout(wait_timeout timeout) noexcept;

/// Python's rule for poll/epoll events: everything but IN means writable
/// (OUT, ERR, HUP, NVAL), everything but OUT means readable.
constexpr unsigned events_from_poll(std::uint32_t revents, std::uint32_t in,
                                    std::uint32_t out) noexcept {
  unsigned events = 0;
  if (revents & ~in) events |= EVENT_WRITE;
  if (revents & ~out) events |= EVENT_READ;
  return events;
}

template <class Data>
struct selector_node {
  selector_key<Data> key;
  std::size_t slot = 0;  // the backend's own index (poll: position in its pollfd array)
};

// The keys of one selector, indexed by descriptor. A vector indexed by fd
// (as libuv's watcher array) makes the per-event lookup one bounds check and
// one load: no hashing, no allocation. Nodes are heap-allocated so that a key
// keeps its address while the table grows.
template <class Data>
class key_table {
 public:
  using node = selector_node<Data>;

  node* find_fd(int fd) const noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= by_fd_.size()) return nullptr;
    return by_fd_[static_cast<std::size_t>(fd)].get();
  }

  // Python's _fileobj_lookup: by descriptor; when the object no longer has
  // one (a socket closed since), by identity among the keys.
  node* lookup(const selectable& fileobj) const noexcept {
    const int fd = fileobj.fileno();
    if (fd >= 0) return find_fd(fd);
    if (!fileobj.is_socket()) return nullptr;
    for (const auto& n : by_fd_)
      if (n && n->key.fileobj == fileobj) return n.get();
    return nullptr;
  }

  // Like lookup(), with Python's errors: KeyError when not registered; the
  // ValueError of an invalid descriptor when identity does not find it either.
  node& at(const selectable& fileobj) const {
    if (node* n = lookup(fileobj)) return *n;
    if (fileobj.fileno() < 0) (void)selector_fd(fileobj);  // throws invalid_argument
    throw_not_registered(fileobj);
  }

  node& insert(int fd, selector_key<Data> key) {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= by_fd_.size()) by_fd_.resize(std::max(index + 1, by_fd_.size() * 2));
    by_fd_[index] = std::make_unique<node>(node{std::move(key), 0});
    ++size_;
    return *by_fd_[index];
  }

  // Takes the node out of the table. It is kept alive ("retired") until the
  // next select() so that references handed out by the last select() stay
  // valid while the caller is still iterating over them.
  node& retire(int fd) {
    auto& slot = by_fd_[static_cast<std::size_t>(fd)];
    retired_.push_back(std::move(slot));
    --size_;
    return *retired_.back();
  }

  // Drops the node at once (a registration that never succeeded: nobody can
  // hold a reference to it).
  void discard(int fd) noexcept {
    by_fd_[static_cast<std::size_t>(fd)].reset();
    --size_;
  }

  void clear_retired() noexcept { retired_.clear(); }
  void clear() noexcept {
    by_fd_.clear();
    retired_.clear();
    size_ = 0;
  }
  std::size_t size() const noexcept { return size_; }
  const std::vector<std::unique_ptr<node>>& slots() const noexcept { return by_fd_; }

 private:
  std::vector<std::unique_ptr<node>> by_fd_;
  std::vector<std::unique_ptr<node>> retired_;
  std::size_t size_ = 0;
};

}  // namespace detail

/// Python's selector.get_map(): a read-only view of the registrations, live
/// (it follows later register/unregister calls; after close() it is empty).
/// Iteration yields the keys in descriptor order (each has `.fd`; Python's
/// iteration yields the fds).
template <class Data = std::any>
class selector_mapping {
  using table = detail::key_table<Data>;

 public:
  explicit selector_mapping(const table& t) noexcept : table_(&t) {}

  std::size_t size() const noexcept { return table_->size(); }
  bool empty() const noexcept { return size() == 0; }
  /// Python's `fileobj in mapping`.
  bool contains(selectable fileobj) const noexcept { return table_->lookup(fileobj) != nullptr; }
  /// Python's mapping.get(fileobj): nullptr when not registered.
  const selector_key<Data>* get(selectable fileobj) const noexcept {
    const auto* n = table_->lookup(fileobj);
    return n ? &n->key : nullptr;
  }
  /// Python's mapping[fileobj]. @throws key_error when not registered.
  const selector_key<Data>& operator[](selectable fileobj) const { return table_->at(fileobj).key; }

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = selector_key<Data>;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    iterator() = default;
    iterator(const table* t, std::size_t i) noexcept : table_(t), i_(i) { skip(); }
    reference operator*() const noexcept { return table_->slots()[i_]->key; }
    pointer operator->() const noexcept { return &**this; }
    iterator& operator++() noexcept {
      ++i_;
      skip();
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }

   private:
    void skip() noexcept {
      const auto& s = table_->slots();
      while (i_ < s.size() && !s[i_]) ++i_;
    }
    const table* table_ = nullptr;
    std::size_t i_ = 0;
  };

  iterator begin() const noexcept { return iterator(table_, 0); }
  iterator end() const noexcept { return iterator(table_, table_->slots().size()); }

 private:
  const table* table_;
};

/// The selector interface shared by every selector class, through CRTP:
/// `Derived` supplies the backend (backend_register, backend_unregister,
/// backend_modify, backend_select, backend_close). Not for direct use.
template <class Derived, class Data>
class basic_selector {
 public:
  using data_type = Data;
  using key_type = selector_key<Data>;
  using event_type = selector_event<Data>;
  using mapping_type = selector_mapping<Data>;

  basic_selector(const basic_selector&) = delete;
  basic_selector& operator=(const basic_selector&) = delete;

  /// Registers `fileobj` for `events` (EVENT_READ and/or EVENT_WRITE) with
  /// `data`, and returns the new key.
  /// @throws std::invalid_argument bad events or a negative descriptor.
  /// @throws key_error the descriptor is already registered (through any object).
  /// @throws os_error the kernel refused (epoll: EPERM for a regular file);
  ///   no key is left behind.
  const key_type& register_(selectable fileobj, unsigned events, Data data = Data{}) {
    check_open();
    detail::check_selector_events(events);
    const int fd = detail::selector_fd(fileobj);
    if (table_.find_fd(fd)) detail::throw_already_registered(fileobj, fd);
    derived().backend_check(fd);
    auto& n = table_.insert(fd, key_type{fileobj, fd, events, std::move(data)});
    try {
      derived().backend_register(n);
    } catch (...) {
      table_.discard(fd);
      throw;
    }
    return n.key;
  }

  /// Unregisters `fileobj` and returns its key (data moved out). Works after
  /// the socket object was closed (found by identity) and after its
  /// descriptor was closed behind its back (the kernel's EBADF is swallowed).
  /// @throws key_error when not registered.
  key_type unregister(selectable fileobj) {
    check_open();
    auto& n = table_.at(fileobj);
    try {
      derived().backend_unregister(n);
    } catch (const os_error&) {
      // Python's selectors swallow OSError here: the descriptor was closed
      // (EBADF) or its number reused by another file (ENOENT); either way the
      // registration is gone from the kernel already.
    }
    auto& old = table_.retire(n.key.fd);
    return key_type{old.key.fileobj, old.key.fd, old.key.events, std::move(old.key.data)};
  }

  /// Changes the events of a registration and keeps its data. With the same
  /// events it does nothing (no system call).
  /// @throws key_error when not registered; os_error from the kernel, in which
  ///   case the key has been removed (bpo-30014).
  const key_type& modify(selectable fileobj, unsigned events) {
    check_open();
    detail::check_selector_events(events);
    auto& n = table_.at(fileobj);
    change_events(n, events);
    return n.key;
  }
  /// Changes events and data. Data alone makes no system call.
  const key_type& modify(selectable fileobj, unsigned events, Data data) {
    check_open();
    detail::check_selector_events(events);
    auto& n = table_.at(fileobj);
    change_events(n, events);
    n.key.data = std::move(data);
    return n.key;
  }

  /// Waits until some registered object is ready or `timeout` passes
  /// (std::nullopt: forever; ≤ 0: poll) and returns the ready keys with
  /// their events. The span and the keys it refers to are valid until the
  /// next select() or close().
  std::span<const event_type> select(wait_timeout timeout = std::nullopt) {
    check_open();
    table_.clear_retired();
    ready_.clear();
    derived().backend_select(detail::selector_timeout(timeout), ready_);
    return ready_;
  }
  template <class Rep, class Period>
  std::span<const event_type> select(std::chrono::duration<Rep, Period> timeout) {
    return select(detail::to_wait_timeout(timeout));
  }

  /// @throws key_error when not registered.
  const key_type& get_key(selectable fileobj) const {
    check_open();
    return table_.at(fileobj).key;
  }
  mapping_type get_map() const {
    check_open();
    return mapping_type(table_);
  }

  /// Forgets every key and releases the backend (the epoll descriptor).
  /// Idempotent; afterwards every other call throws std::runtime_error.
  void close() noexcept {
    if (closed_) return;
    closed_ = true;
    ready_.clear();
    table_.clear();
    derived().backend_close();
  }
  bool closed() const noexcept { return closed_; }

 protected:
  basic_selector() = default;
  ~basic_selector() = default;

  using node = detail::selector_node<Data>;
  const detail::key_table<Data>& table() const noexcept { return table_; }
  std::size_t size() const noexcept { return table_.size(); }
  void push_event(std::vector<event_type>& out, int fd, unsigned events) const {
    const node* n = table_.find_fd(fd);
    if (n == nullptr) return;  // unregistered since the kernel reported it
    events &= n->key.events;
    if (events != 0) out.push_back(event_type{n->key, events});
  }

 private:
  Derived& derived() noexcept { return static_cast<Derived&>(*this); }
  void check_open() const {
    if (closed_) detail::throw_selector_closed();
  }
  void change_events(node& n, unsigned events) {
    if (events == n.key.events) return;
    try {
      derived().backend_modify(n, events);
    } catch (...) {
      // bpo-30014: the kernel no longer holds what the key says; drop the key.
      table_.retire(n.key.fd);
      throw;
    }
    n.key.events = events;
  }

  detail::key_table<Data> table_;
  std::vector<event_type> ready_;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------
// select_selector
// ---------------------------------------------------------------------------

/// Python's SelectSelector: select(2). Portable and O(highest fd) per call;
/// descriptors ≥ FD_SETSIZE (1024) cannot be registered
/// (std::invalid_argument "filedescriptor out of range in select()").
template <class Data = std::any>
class select_selector : public basic_selector<select_selector<Data>, Data> {
  using base = basic_selector<select_selector<Data>, Data>;
  friend base;

 public:
  select_selector() = default;
  ~select_selector() { this->close(); }

 private:
  void backend_check(int fd) const { detail::check_select_fd(fd); }
  void backend_register(typename base::node& n) {
    interest_.set(n.key.fd, (n.key.events & EVENT_READ) != 0, (n.key.events & EVENT_WRITE) != 0);
  }
  void backend_unregister(typename base::node& n) { interest_.clear(n.key.fd); }
  void backend_modify(typename base::node& n, unsigned events) {
    interest_.set(n.key.fd, (events & EVENT_READ) != 0, (events & EVENT_WRITE) != 0);
  }
  void backend_select(wait_timeout timeout, std::vector<typename base::event_type>& out) {
    if (interest_.wait(timeout, ready_) == 0) return;
    for (int fd = 0; fd <= ready_.max_fd(); ++fd) {
      unsigned events = 0;
      if (ready_.readable(fd)) events |= EVENT_READ;
      if (ready_.writable(fd)) events |= EVENT_WRITE;
      if (events) this->push_event(out, fd, events);
    }
  }
  void backend_close() noexcept { interest_ = detail::select_interest(); }

  detail::select_interest interest_;
  detail::select_interest ready_;
};

// ---------------------------------------------------------------------------
// poll_selector
// ---------------------------------------------------------------------------

/// Python's PollSelector: poll(2) over one pollfd array kept in step with the
/// keys. No FD_SETSIZE limit; O(registered) per call.
template <class Data = std::any>
class poll_selector : public basic_selector<poll_selector<Data>, Data> {
  using base = basic_selector<poll_selector<Data>, Data>;
  friend base;

 public:
  poll_selector() = default;
  ~poll_selector() { this->close(); }

 private:
  static short poll_events(unsigned events) noexcept {
    short mask = 0;
    if (events & EVENT_READ) mask = static_cast<short>(mask | POLLIN);
    if (events & EVENT_WRITE) mask = static_cast<short>(mask | POLLOUT);
    return mask;
  }
  void backend_check(int) const noexcept {}
  void backend_register(typename base::node& n) {
    n.slot = fds_.size();
    fds_.push_back(pollfd{n.key.fd, poll_events(n.key.events), 0});
  }
  void backend_unregister(typename base::node& n) {
    // Swap-remove keeps the array dense; the moved entry's key learns its slot.
    const std::size_t slot = n.slot;
    if (slot + 1 != fds_.size()) {
      fds_[slot] = fds_.back();
      if (auto* moved = this->table().find_fd(fds_[slot].fd)) moved->slot = slot;
    }
    fds_.pop_back();
  }
  void backend_modify(typename base::node& n, unsigned events) {
    fds_[n.slot].events = poll_events(events);
  }
  void backend_select(wait_timeout timeout, std::vector<typename base::event_type>& out) {
    std::size_t ready = detail::poll_descriptors(fds_.data(), fds_.size(), timeout);
    for (std::size_t i = 0; i < fds_.size() && ready > 0; ++i) {
      if (fds_[i].revents == 0) continue;
      --ready;
      const auto revents = static_cast<std::uint32_t>(static_cast<unsigned short>(fds_[i].revents));
      this->push_event(out, fds_[i].fd, detail::events_from_poll(revents, POLLIN, POLLOUT));
    }
  }
  void backend_close() noexcept {
    fds_.clear();
    fds_.shrink_to_fit();
  }

  std::vector<pollfd> fds_;
};

// ---------------------------------------------------------------------------
// epoll_selector (Linux)
// ---------------------------------------------------------------------------
#if defined(__linux__)

/// Python's EpollSelector: level-triggered epoll, O(ready) per call. The
/// kernel writes into a buffer with room for every registered descriptor
/// (Python's maxevents = len(map) or 1), resized at register time only, so
/// select() allocates nothing in steady state.
template <class Data = std::any>
class epoll_selector : public basic_selector<epoll_selector<Data>, Data> {
  using base = basic_selector<epoll_selector<Data>, Data>;
  friend base;

 public:
  epoll_selector() : buffer_(1) {}
  ~epoll_selector() { this->close(); }

  /// The epoll descriptor (Python's selector.fileno()).
  int fileno() const {
    if (this->closed()) detail::throw_selector_closed();
    return epoll_.fileno();
  }

 private:
  static std::uint32_t epoll_events(unsigned events) noexcept {
    std::uint32_t mask = 0;
    if (events & EVENT_READ) mask |= EPOLLIN;
    if (events & EVENT_WRITE) mask |= EPOLLOUT;
    return mask;
  }
  void backend_check(int) const noexcept {}
  void backend_register(typename base::node& n) {
    epoll_.register_(n.key.fd, epoll_events(n.key.events));
    // Room for every registered descriptor, grown (never per select) here.
    if (buffer_.size() < this->size()) buffer_.resize(std::max(this->size(), buffer_.size() * 2));
  }
  void backend_unregister(typename base::node& n) { epoll_.unregister(n.key.fd); }
  void backend_modify(typename base::node& n, unsigned events) {
    epoll_.modify(n.key.fd, epoll_events(events));
  }
  void backend_select(wait_timeout timeout, std::vector<typename base::event_type>& out) {
    const std::size_t room = std::max<std::size_t>(this->size(), 1);
    const std::size_t n = epoll_.poll(std::span<epoll_event>(buffer_.data(), room), timeout);
    for (std::size_t i = 0; i < n; ++i) {
      const epoll_event& e = buffer_[i];
      this->push_event(out, e.data.fd, detail::events_from_poll(e.events, EPOLLIN, EPOLLOUT));
    }
  }
  void backend_close() noexcept {
    epoll_.close();
    buffer_.clear();
    buffer_.shrink_to_fit();
  }

  epoll epoll_;
  std::vector<epoll_event> buffer_;
};

#endif  // __linux__

// ---------------------------------------------------------------------------
// kqueue_selector (BSD, macOS)
// ---------------------------------------------------------------------------
// NOT COMPILED in this project's Linux CI (see select.hpp): written after
// Python's KqueueSelector and kevent(2).
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(__DragonFly__)

/// Python's KqueueSelector: one EVFILT_READ and/or one EVFILT_WRITE filter
/// per key, level-triggered. Read and write readiness arrive as *separate*
/// kernel events, so one key can appear twice in one select() result (once
/// with EVENT_READ, once with EVENT_WRITE), as in Python. The event buffer has
/// room for every registered filter (Python's `max_events`, at least 1 so that
/// the timeout is honoured, bpo-29255), grown at register time only.
///
/// Differences from Python, on purpose: modify() adds or deletes only the
/// filters that change (Python deletes all, then adds all), and a failed
/// register/modify also deletes the filters it had added, so the kernel holds
/// nothing for a key that is gone.
template <class Data = std::any>
class kqueue_selector : public basic_selector<kqueue_selector<Data>, Data> {
  using base = basic_selector<kqueue_selector<Data>, Data>;
  friend base;

 public:
  kqueue_selector() : buffer_(1) {}
  ~kqueue_selector() { this->close(); }

  /// The kqueue descriptor (Python's selector.fileno()).
  int fileno() const {
    if (this->closed()) detail::throw_selector_closed();
    return kqueue_.fileno();
  }

 private:
  using raw_event = detail::kevent_raw;

  // Python's kq.control([kevent(fd, filter, flags)], 0, 0).
  void apply(int fd, int filter, int flags) {
    raw_event change{};
    change.ident = static_cast<decltype(change.ident)>(fd);
    change.filter = static_cast<decltype(change.filter)>(filter);
    change.flags = static_cast<decltype(change.flags)>(flags);
    kqueue_.control(std::span<const raw_event>(&change, 1), std::span<raw_event>(),
                    wait_timeout(std::chrono::nanoseconds(0)));
  }
  void add_filter(int fd, int filter) {
    apply(fd, filter, EV_ADD);
    ++max_events_;
  }
  // Python swallows the OSError of a descriptor closed since registration
  // (the kernel dropped its filters already).
  void delete_filter(int fd, int filter) noexcept {
    --max_events_;
    try {
      apply(fd, filter, EV_DELETE);
    } catch (...) {
    }
  }
  void delete_filters(int fd, unsigned held) noexcept {
    if (held & EVENT_READ) delete_filter(fd, EVFILT_READ);
    if (held & EVENT_WRITE) delete_filter(fd, EVFILT_WRITE);
  }
  void grow_buffer() {
    if (buffer_.size() < max_events_) buffer_.resize(std::max(max_events_, buffer_.size() * 2));
  }

  void backend_check(int) const noexcept {}
  void backend_register(typename base::node& n) {
    const int fd = n.key.fd;
    unsigned held = 0;
    try {
      if (n.key.events & EVENT_READ) {
        add_filter(fd, EVFILT_READ);
        held |= EVENT_READ;
      }
      if (n.key.events & EVENT_WRITE) {
        add_filter(fd, EVFILT_WRITE);
        held |= EVENT_WRITE;
      }
      grow_buffer();
    } catch (...) {
      delete_filters(fd, held);
      throw;
    }
  }
  void backend_unregister(typename base::node& n) { delete_filters(n.key.fd, n.key.events); }
  void backend_modify(typename base::node& n, unsigned events) {
    const int fd = n.key.fd;
    unsigned held = n.key.events;
    try {
      if ((held & EVENT_READ) && !(events & EVENT_READ)) {
        held &= ~EVENT_READ;
        delete_filter(fd, EVFILT_READ);
      }
      if ((held & EVENT_WRITE) && !(events & EVENT_WRITE)) {
        held &= ~EVENT_WRITE;
        delete_filter(fd, EVFILT_WRITE);
      }
      if (!(held & EVENT_READ) && (events & EVENT_READ)) {
        add_filter(fd, EVFILT_READ);
        held |= EVENT_READ;
      }
      if (!(held & EVENT_WRITE) && (events & EVENT_WRITE)) {
        add_filter(fd, EVFILT_WRITE);
        held |= EVENT_WRITE;
      }
      grow_buffer();
    } catch (...) {
      // The base drops the key (bpo-30014); drop its remaining filters too.
      delete_filters(fd, held);
      throw;
    }
  }
  void backend_select(wait_timeout timeout, std::vector<typename base::event_type>& out) {
    const std::size_t room = std::max<std::size_t>(max_events_, 1);
    const std::size_t n = kqueue_.control(std::span<const raw_event>(),
                                          std::span<raw_event>(buffer_.data(), room), timeout);
    for (std::size_t i = 0; i < n; ++i) {
      const raw_event& e = buffer_[i];
      if (e.ident > static_cast<std::uintptr_t>(INT_MAX)) continue;  // not one of ours
      unsigned events = 0;
      if (e.filter == EVFILT_READ) events |= EVENT_READ;
      if (e.filter == EVFILT_WRITE) events |= EVENT_WRITE;
      if (events != 0) this->push_event(out, static_cast<int>(e.ident), events);
    }
  }
  void backend_close() noexcept {
    kqueue_.close();
    buffer_.clear();
    buffer_.shrink_to_fit();
    max_events_ = 0;
  }

  kqueue kqueue_;
  std::vector<raw_event> buffer_;
  std::size_t max_events_ = 0;  // filters registered
};

#endif  // kqueue platforms

// ---------------------------------------------------------------------------
// devpoll_selector (Solaris, illumos)
// ---------------------------------------------------------------------------
// NOT COMPILED in this project's Linux CI (see select.hpp): written after
// Python's DevpollSelector.
#if defined(__sun)

/// Python's DevpollSelector: /dev/poll through pysock::devpoll. Changes are
/// queued and reach the kernel at the next select(), so a bad descriptor
/// shows up there (os_error), not at register_(), as in Python.
template <class Data = std::any>
class devpoll_selector : public basic_selector<devpoll_selector<Data>, Data> {
  using base = basic_selector<devpoll_selector<Data>, Data>;
  friend base;

 public:
  devpoll_selector() = default;
  ~devpoll_selector() { this->close(); }

  /// The /dev/poll descriptor (Python's selector.fileno()).
  int fileno() const {
    if (this->closed()) detail::throw_selector_closed();
    return devpoll_.fileno();
  }

 private:
  static unsigned poll_events(unsigned events) noexcept {
    unsigned mask = 0;
    if (events & EVENT_READ) mask |= static_cast<unsigned>(POLLIN);
    if (events & EVENT_WRITE) mask |= static_cast<unsigned>(POLLOUT);
    return mask;
  }
  void backend_check(int) const noexcept {}
  void backend_register(typename base::node& n) {
    devpoll_.register_(n.key.fd, poll_events(n.key.events));
  }
  void backend_unregister(typename base::node& n) { devpoll_.unregister(n.key.fd); }
  void backend_modify(typename base::node& n, unsigned events) {
    devpoll_.modify(n.key.fd, poll_events(events));
  }
  void backend_select(wait_timeout timeout, std::vector<typename base::event_type>& out) {
    for (const pollfd& p : devpoll_.wait(timeout)) {
      const auto revents = static_cast<std::uint32_t>(static_cast<unsigned short>(p.revents));
      this->push_event(out, p.fd,
                       detail::events_from_poll(revents, static_cast<std::uint32_t>(POLLIN),
                                                static_cast<std::uint32_t>(POLLOUT)));
    }
  }
  void backend_close() noexcept { devpoll_.close(); }

  devpoll devpoll_;
};

#endif  // __sun

// ---------------------------------------------------------------------------
// default_selector
// ---------------------------------------------------------------------------

/// Python's DefaultSelector: the most efficient selector of the platform,
/// chosen at compile time in Python's order — kqueue, epoll, devpoll, poll
/// (select is never needed: every supported system has poll). Python probes
/// at import; on Linux both give epoll.
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || \
    defined(__DragonFly__)
template <class Data = std::any>
class default_selector : public kqueue_selector<Data> {};
#elif defined(__linux__)
template <class Data = std::any>
class default_selector : public epoll_selector<Data> {};
#elif defined(__sun)
template <class Data = std::any>
class default_selector : public devpoll_selector<Data> {};
#else
template <class Data = std::any>
class default_selector : public poll_selector<Data> {};
#endif

// ---------------------------------------------------------------------------
// The interface as a concept, and as an optional runtime-polymorphic base
// ---------------------------------------------------------------------------

/// What every pysock selector provides (write generic code against this).
template <class S>
concept selector_type = requires(S& s, const S& cs, selectable f, unsigned ev,
                                 typename S::data_type d, wait_timeout t) {
  typename S::key_type;
  { s.register_(f, ev, std::move(d)) } -> std::same_as<const typename S::key_type&>;
  { s.unregister(f) } -> std::same_as<typename S::key_type>;
  { s.modify(f, ev) } -> std::same_as<const typename S::key_type&>;
  { s.select(t) } -> std::same_as<std::span<const typename S::event_type>>;
  { cs.get_key(f) } -> std::same_as<const typename S::key_type&>;
  { cs.get_map() } -> std::same_as<typename S::mapping_type>;
  s.close();
  { cs.closed() } -> std::same_as<bool>;
};

/// Python's BaseSelector as a runtime interface, for code that picks a
/// selector at run time (one virtual call per method, none per event).
/// Wrap any selector with pysock::polymorphic_selector<S>.
template <class Data = std::any>
class selector {
 public:
  using data_type = Data;
  using key_type = selector_key<Data>;
  using event_type = selector_event<Data>;
  using mapping_type = selector_mapping<Data>;

  virtual ~selector() = default;
  virtual const key_type& register_(selectable fileobj, unsigned events, Data data = Data{}) = 0;
  virtual key_type unregister(selectable fileobj) = 0;
  virtual const key_type& modify(selectable fileobj, unsigned events) = 0;
  virtual const key_type& modify(selectable fileobj, unsigned events, Data data) = 0;
  virtual std::span<const event_type> select(wait_timeout timeout = std::nullopt) = 0;
  virtual const key_type& get_key(selectable fileobj) const = 0;
  virtual mapping_type get_map() const = 0;
  virtual void close() noexcept = 0;
  virtual bool closed() const noexcept = 0;
};

/// Any concrete selector behind the pysock::selector<Data> interface.
template <selector_type S>
class polymorphic_selector final : public selector<typename S::data_type> {
  using Data = typename S::data_type;
  using base = selector<Data>;

 public:
  using typename base::event_type;
  using typename base::key_type;
  using typename base::mapping_type;

  const key_type& register_(selectable f, unsigned ev, Data d = Data{}) override {
    return impl_.register_(f, ev, std::move(d));
  }
  key_type unregister(selectable f) override { return impl_.unregister(f); }
  const key_type& modify(selectable f, unsigned ev) override { return impl_.modify(f, ev); }
  const key_type& modify(selectable f, unsigned ev, Data d) override {
    return impl_.modify(f, ev, std::move(d));
  }
  std::span<const event_type> select(wait_timeout t = std::nullopt) override {
    return impl_.select(t);
  }
  const key_type& get_key(selectable f) const override { return impl_.get_key(f); }
  mapping_type get_map() const override { return impl_.get_map(); }
  void close() noexcept override { impl_.close(); }
  bool closed() const noexcept override { return impl_.closed(); }

  /// The wrapped selector (e.g. for epoll_selector::fileno()).
  S& get() noexcept { return impl_; }

 private:
  S impl_;
};

}  // namespace pysock
