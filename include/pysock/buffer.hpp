// SPDX-License-Identifier: MIT
//
// pysock/buffer.hpp — "anything viewable as bytes", Python's bytes-like object.
//
// `const_buffer` is what send()/sendall()/sendto()/setsockopt() take: a
// std::string_view, a string literal (without its NUL), a std::string, a
// std::span, array or vector of char, unsigned char or std::byte. `mutable_buffer` is what
// recv_into() and recvfrom_into() fill: a std::span, a std::array, a char array, a std::string or a
// std::vector of one-byte elements. Both are two words, passed by value, and never own memory.
#pragma once

#include <cstddef>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace pysock {

/// An owned byte string, what Python calls `bytes`; returned by recv().
using bytes = std::string;

namespace detail {
template <class T>
inline constexpr bool is_byte_like_v = sizeof(T) == 1 && std::is_trivially_copyable_v<T> &&
                                       !std::is_same_v<std::remove_cv_t<T>, bool>;

// A range of one-byte elements laid out contiguously.
template <class R>
concept byte_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
    is_byte_like_v<std::remove_cv_t<std::ranges::range_value_t<R>>>;

// A const char array is a string literal in practice ("Hello" is
// const char[6]): it is taken without its final NUL.
template <class R>
concept const_char_array = std::is_array_v<std::remove_reference_t<R>> &&
                           std::is_same_v < std::remove_extent_t<std::remove_reference_t<R>>,
const char > ;

// std::string, std::pmr::string and other string classes: viewed as text.
template <class S>
concept string_like =
    std::is_class_v<std::remove_cvref_t<S>> && std::is_convertible_v < const std::remove_cvref_t<S>
&, std::string_view > ;

// A C string pointer (char* or const char*), not an array.
template <class P>
concept c_string_pointer = std::is_same_v < std::remove_cvref_t<P>,
const char* > || std::is_same_v<std::remove_cvref_t<P>, char*>;
}  // namespace detail

/// Read-only view of bytes to send.
class const_buffer {
 public:
  constexpr const_buffer() noexcept = default;
  const_buffer(const void* data, std::size_t size) noexcept
      : data_(static_cast<const std::byte*>(data)), size_(size) {}
  const_buffer(std::string_view text) noexcept
      : data_(reinterpret_cast<const std::byte*>(text.data())), size_(text.size()) {}
  /// std::string and other string classes (a temporary lives through the call).
  template <detail::string_like S>
  requires(!std::is_same_v<std::remove_cvref_t<S>, std::string_view>) const_buffer(const S& text)
  noexcept : const_buffer(std::string_view(text)) {}
  /// A C string: the bytes up to its NUL.
  template <detail::c_string_pointer P>
  const_buffer(P&& c_string) noexcept : const_buffer(std::string_view(c_string)) {}
  /// A string literal (or any const char array): all of it but a final NUL.
  /// Binary data in a const char array that ends in 0 would lose that byte:
  /// pass a std::span or an unsigned char array for binary data.
  template <std::size_t N>
  const_buffer(const char (&literal)[N]) noexcept
      : data_(reinterpret_cast<const std::byte*>(literal)),
        size_(literal[N - 1] == '\0' ? N - 1 : N) {}
  /// Spans, vectors, std::arrays and non-const arrays of char, unsigned char
  /// or std::byte: every element.
  template <detail::byte_range R>
  requires(!detail::const_char_array<R> && !detail::string_like<R>) const_buffer(R&& range)
  noexcept
      : data_(reinterpret_cast<const std::byte*>(std::ranges::data(range))),
        size_(std::ranges::size(range)) {}
  /// Python's None is not bytes: a null pointer does not compile.
  const_buffer(std::nullptr_t) = delete;

  constexpr const std::byte* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  /// The bytes from `offset` on (clamped to the end).
  const_buffer subspan(std::size_t offset) const noexcept {
    offset = offset < size_ ? offset : size_;
    return {data_ + offset, size_ - offset};
  }
  std::string_view as_string_view() const noexcept {
    return {reinterpret_cast<const char*>(data_), size_};
  }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Writable view of caller memory to receive into (the allocation-free path).
class mutable_buffer {
 public:
  constexpr mutable_buffer() noexcept = default;
  mutable_buffer(void* data, std::size_t size) noexcept
      : data_(static_cast<std::byte*>(data)), size_(size) {}
  /// Fills the string's current size: resize() it first (reserve() is not
  /// enough: an empty buffer receives nothing and reads as end of file).
  mutable_buffer(std::string& storage) noexcept : mutable_buffer(storage.data(), storage.size()) {}
  /// Spans, arrays, std::arrays and vectors of one-byte elements. A temporary
  /// container is refused at compile time: what it received would be lost.
  template <detail::byte_range R>
  requires(!std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>> &&
           (std::is_lvalue_reference_v<R> || std::ranges::borrowed_range<R>))
      mutable_buffer(R&& range)
  noexcept
      : data_(reinterpret_cast<std::byte*>(std::ranges::data(range))),
        size_(std::ranges::size(range)) {}

  constexpr std::byte* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  mutable_buffer first(std::size_t count) const noexcept {
    return {data_, count < size_ ? count : size_};
  }
  operator const_buffer() const noexcept { return {data_, size_}; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace pysock
