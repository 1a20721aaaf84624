// SPDX-License-Identifier: MIT
//
// pysock/buffer.hpp — "anything viewable as bytes", Python's bytes-like object.
//
// `const_buffer` is what send()/sendall()/sendto()/setsockopt() take: a
// std::string_view, a string literal, a std::string, a std::span or a vector
// of char, unsigned char or std::byte. `mutable_buffer` is what recv_into()
// and recvfrom_into() fill: a std::span, a std::array, a char array, a
// std::string or a std::vector of one-byte elements. Both are two words,
// passed by value, and never own memory.
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
inline constexpr bool is_byte_like_v =
    sizeof(T) == 1 && std::is_trivially_copyable_v<T> && !std::is_same_v<std::remove_cv_t<T>, bool>;

// A range of one-byte elements laid out contiguously.
template <class R>
concept byte_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                     is_byte_like_v<std::remove_cv_t<std::ranges::range_value_t<R>>>;

// A char array is a C string literal in practice ("Hello" is const char[6]):
// it is taken up to its NUL through std::string_view, not with the NUL.
template <class R>
concept char_array =
    std::is_array_v<std::remove_cvref_t<R>> &&
    std::is_same_v<std::remove_cv_t<std::remove_extent_t<std::remove_cvref_t<R>>>, char>;
}  // namespace detail

/// Read-only view of bytes to send.
class const_buffer {
 public:
  constexpr const_buffer() noexcept = default;
  const_buffer(const void* data, std::size_t size) noexcept
      : data_(static_cast<const std::byte*>(data)), size_(size) {}
  const_buffer(std::string_view text) noexcept : data_(reinterpret_cast<const std::byte*>(text.data())), size_(text.size()) {}
  const_buffer(const char* c_string) noexcept : const_buffer(std::string_view(c_string)) {}
  const_buffer(const std::string& text) noexcept : const_buffer(std::string_view(text)) {}
  template <detail::byte_range R>
    requires(!detail::char_array<R> && !std::is_convertible_v<R, std::string_view>)
  const_buffer(R&& range) noexcept
      : data_(reinterpret_cast<const std::byte*>(std::ranges::data(range))),
        size_(std::ranges::size(range)) {}

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
  /// Fills the string's current size (resize it first); does not resize.
  mutable_buffer(std::string& storage) noexcept : mutable_buffer(storage.data(), storage.size()) {}
  template <detail::byte_range R>
    requires(!std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>>)
  mutable_buffer(R&& range) noexcept
      : data_(reinterpret_cast<std::byte*>(std::ranges::data(range))), size_(std::ranges::size(range)) {}

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
