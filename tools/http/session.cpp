// SPDX-License-Identifier: MIT
#include "http/session.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "http/conditional.hpp"
#include "http/http_date.hpp"
#include "http/listing.hpp"
#include "http/mime.hpp"
#include "http/response.hpp"

namespace pysock::http {
namespace {

// An open file waiting in the queue counts as this many bytes towards the
// high-water mark, so pipelined requests for large files cannot pile up
// descriptors either.
constexpr std::size_t file_chunk_weight = 64 * 1024;

// Room kept free at the end of the input buffer before compacting it.
constexpr std::size_t min_read_space = 4096;

// Output buffers of fully sent chunks, shared by the sessions of a thread
// and reused last-in first-out: the next batch, on whichever connection, is
// built in memory that is still in the CPU's cache, as one buffer per
// connection (50 connections × 17 KiB) would not be. perf showed copying the
// bodies into cold per-connection buffers at ~11% of the server's CPU.
// Bounded: a few buffers, none larger than the high-water mark's order.
thread_local std::vector<std::string> free_buffers;
constexpr std::size_t max_free_buffers = 4;
constexpr std::size_t max_free_capacity = 512 * 1024;

std::string take_buffer() {
  if (free_buffers.empty()) return {};
  std::string s = std::move(free_buffers.back());
  free_buffers.pop_back();
  s.clear();
  return s;
}

void give_buffer(std::string&& s) {
  if (free_buffers.size() < max_free_buffers && s.capacity() <= max_free_capacity)
    free_buffers.push_back(std::move(s));
}

// "200", "404", ...: an access-log line's status without dividing.
constexpr auto status_digits = [] {
  std::array<std::array<char, 3>, 1000> table{};
  for (std::size_t i = 100; i < 1000; ++i)
    table[i] = {static_cast<char>('0' + i / 100), static_cast<char>('0' + i / 10 % 10),
                static_cast<char>('0' + i % 10)};
  return table;
}();

// memcpy for the short pieces of an access-log line (the client and date,
// the request line): two overlapping fixed-size copies inline instead of a
// call that first dispatches on the size.
inline void copy_short(char* to, const char* from, std::size_t n) noexcept {
  if (n >= 16 && n <= 32) {
    std::memcpy(to, from, 16);
    std::memcpy(to + n - 16, from + n - 16, 16);
  } else if (n > 32 && n <= 64) {
    std::memcpy(to, from, 32);
    std::memcpy(to + n - 32, from + n - 32, 32);
  } else {
    std::memcpy(to, from, n);
  }
}

std::string content_range(std::uint64_t first, std::uint64_t last, std::uint64_t size) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size);
}

}  // namespace

void log_batch::add(std::string_view lines) {
  if (lines.empty()) return;
  std::memcpy(reserve(lines.size()), lines.data(), lines.size());
  commit(lines.size());
}

void log_batch::grow(std::size_t n) {
  const std::size_t capacity = std::max({capacity_ * 2, size_ + n, std::size_t{4096}});
  auto data = std::unique_ptr<char[]>(new char[capacity]);
  if (size_ != 0) std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

session::session(const server_context& context, std::string client)
    : context_(context),
      client_(std::move(client)),
      parser_(context.config.limits),
      in_capacity_(context.config.limits.max_head_bytes() + min_read_space),
      ready_since_(clock::now()) {
  // Sized so that every parser limit fires before the buffer is full: a
  // head that does not fit is an error (414/431), never a stall.
  // Not zero-filled: only received bytes are ever read, and zeroing 20 KiB
  // per connection was measured (cold cache lines on every new connection).
  in_ = std::make_unique_for_overwrite<char[]>(in_capacity_);
}

std::span<char> session::read_space() noexcept {
  return {in_.get() + in_end_, in_capacity_ - in_end_};
}

bool session::wants_read() const noexcept {
  return !closing_ && !eof_ && in_end_ < in_capacity_ &&
         out_weight_ < context_.config.output_high_water;
}

std::optional<session::clock::time_point> session::read_deadline() const noexcept {
  if (closing_ || !out_.empty()) return std::nullopt;
  return ready_since_ + context_.config.header_timeout;
}

void session::on_received(std::size_t n) {
  in_end_ += n;
  if (context_.cache) context_.cache->begin_batch();
  pump();
}

void session::on_eof() {
  eof_ = true;
  pump();
}

void session::on_timeout() {
  if (closing_) return;
  now_ = std::time(nullptr);
  if (in_begin_ != in_end_ || discard_ != 0) {
    const std::string_view partial(in_.get() + in_begin_, in_end_ - in_begin_);
    send_error(408, "Request timed out", partial.substr(0, partial.find_first_of("\r\n")), false,
               false, false);
  }
  closing_ = true;
}

std::string& session::new_output_buffer() {
  chunk c;
  c.bytes = take_buffer();
  out_.push_back(std::move(c));
  tail_bytes_ = &out_.back().bytes;  // deque: stays valid through push_back
  return *tail_bytes_;
}

void session::queue_file(file_descriptor file, std::uint64_t offset, std::uint64_t count) {
  chunk c;
  c.file = std::move(file);
  c.offset = offset;
  c.remaining = count;
  out_.push_back(std::move(c));
  tail_bytes_ = nullptr;  // later bytes go after the file
  out_weight_ += file_chunk_weight;
}

session::output session::next_output() const noexcept {
  output o;
  if (out_.empty()) return o;
  const chunk& c = out_.front();
  if (c.file) {
    o.file_fd = c.file.get();
    o.offset = c.offset;
    o.count = c.remaining;
  } else {
    o.bytes = std::string_view(c.bytes).substr(c.sent);
  }
  o.more = out_.size() > 1;
  return o;
}

void session::advance(std::uint64_t n) {
  if (out_.empty() || n == 0) return;
  chunk& c = out_.front();
  bool finished;
  if (c.file) {
    c.offset += n;
    c.remaining -= n < c.remaining ? n : c.remaining;
    finished = c.remaining == 0;
    if (finished) out_weight_ -= file_chunk_weight;
  } else {
    const std::size_t left = c.bytes.size() - c.sent;
    const std::size_t taken = n < left ? static_cast<std::size_t>(n) : left;
    c.sent += taken;
    out_weight_ -= taken;
    finished = c.sent == c.bytes.size();
    if (finished) give_buffer(std::move(c.bytes));
  }
  if (!finished) return;
  if (tail_bytes_ == &c.bytes) tail_bytes_ = nullptr;
  out_.pop_front();
  if (out_.empty()) {
    ready_since_ = clock::now();
    pump();  // requests that waited behind the high-water mark
  }
}

void session::compact_input() noexcept {
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
  } else if (in_begin_ != 0 && in_capacity_ - in_end_ < min_read_space) {
    std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
}

void session::pump() {
  // One clock read for the batch (the Date of its answers, its log lines).
  now_ = std::time(nullptr);
  while (!closing_ && out_weight_ < context_.config.output_high_water) {
    if (discard_ != 0) {
      const std::uint64_t available = in_end_ - in_begin_;
      const std::uint64_t skip = discard_ < available ? discard_ : available;
      in_begin_ += static_cast<std::size_t>(skip);
      discard_ -= skip;
      if (discard_ != 0) break;
    }
    if (in_begin_ == in_end_) break;
    const parse_status status =
        parser_.parse(std::string_view(in_.get() + in_begin_, in_end_ - in_begin_));
    if (status == parse_status::need_more) break;
    if (status == parse_status::failed) {
      send_error(parser_.error_status(), parser_.error_message(), parser_.error_request_line(),
                 false, false, false);
      closing_ = true;
      break;
    }
    const request& req = parser_.get();
    if (req.content_length > context_.config.max_discarded_body) {
      send_error(413, "Request body too large", req.request_line, req.method == "HEAD", false,
                 req.version_minor == 0);
      closing_ = true;
      break;
    }
    handle(req);
    in_begin_ += parser_.head_size();
    discard_ = req.content_length;
    parser_.reset();
  }
  // A partial request left when the peer has closed can never complete.
  if (eof_ && !closing_ && out_weight_ < context_.config.output_high_water) closing_ = true;
  compact_input();
}

void session::log_request(std::string_view request_line, int status, bool plain) {
  // (A batch is only ever set together with the log.)
  if (context_.batch == nullptr || !plain || now_ != log_prefix_second_ || status < 100 ||
      status > 999)
    return log_request_general(request_line, status, plain);
  // The usual line, written in place: what append_access_log_line() makes
  // of a request line that needs no escaping.
  const std::size_t size = log_prefix_.size() + request_line.size() + 8;
  char* p = context_.batch->reserve(size);
  copy_short(p, log_prefix_.data(), log_prefix_.size());
  p += log_prefix_.size();
  copy_short(p, request_line.data(), request_line.size());
  p += request_line.size();
  const char* digits = status_digits[static_cast<std::size_t>(status)].data();
  const char tail[8] = {'"', ' ', digits[0], digits[1], digits[2], ' ', '-', '\n'};
  std::memcpy(p, tail, sizeof tail);
  context_.batch->commit(size);
}

void session::log_request_general(std::string_view request_line, int status, bool plain) {
  if (!context_.log) return;
  const std::time_t now = now_;
  if (context_.batch != nullptr && plain && status >= 100 && status <= 999) {
    // The first line of a second: "<client> - - [<date>] \"", the start of
    // every line of this second, is made again; then the usual way.
    log_prefix_ = client_;
    log_prefix_ += access_log_stamp(now);
    log_prefix_second_ = now;
    return log_request(request_line, status, plain);
  }
  log_line_.clear();
  append_access_log_line(log_line_, client_, now, request_line, status, plain);
  if (context_.batch != nullptr) {
    context_.batch->add(log_line_);
  } else {
    context_.log(log_line_);
  }
}

void session::send_error(int status, std::string_view message, std::string_view request_line,
                         bool head_only, bool keep_alive, bool http10,
                         std::string_view extra_fields) {
  if (context_.log) context_.log(error_log_line(client_, now_, status, message));
  log_request(request_line, status);
  const std::string body = error_body(status, message);
  std::string& out = output_buffer();
  const std::size_t before = out.size();
  response_head head(out, status);
  head.field("Content-Type", "text/html;charset=utf-8");
  head.content_length(body.size());
  out += extra_fields;
  head.finish(keep_alive, http10);
  if (!head_only) out += body;
  out_weight_ += out.size() - before;
  ++responses_;
  if (!keep_alive) closing_ = true;
}

void session::handle(const request& req) {
  // The usual request, a GET or HEAD of a cached file, without the frame of
  // the general path below (measured: its prologue was a tenth of this).
  if ((req.method == "GET" || req.method == "HEAD") && context_.cache && serve_from_cache(req))
    return;
  handle_uncached(req);
}

void session::handle_uncached(const request& req) {
  const bool head_only = req.method == "HEAD";
  const bool http10 = req.version_minor == 0;
  if (req.method != "GET" && !head_only) {
    // Python's http.server: 501 for every method it has no do_<METHOD> for.
    // The connection closes: a POST's body might not be framed as we think.
    send_error(501, "Unsupported method ('" + std::string(req.method) + "')", req.request_line,
               false, false, http10);
    return;
  }
  resolved_path resolved = context_.root->resolve(req.path, req.query);
  switch (resolved.what) {
    case resolved_path::kind::not_found:
      send_error(404, "File not found", req.request_line, head_only, req.keep_alive, http10);
      return;
    case resolved_path::kind::forbidden:
      send_error(403, "Forbidden", req.request_line, head_only, req.keep_alive, http10);
      return;
    case resolved_path::kind::redirect: {
      log_request(req.request_line, 301);
      std::string& out = output_buffer();
      const std::size_t before = out.size();
      response_head head(out, 301);
      head.field("Location", resolved.location);
      head.content_length(0);
      head.finish(req.keep_alive, http10);
      out_weight_ += out.size() - before;
      break;
    }
    case resolved_path::kind::directory: {
      const std::optional<std::string> page =
          directory_listing(resolved.fd.get(), percent_decode(req.path));
      if (!page) {
        send_error(404, "No permission to list directory", req.request_line, head_only,
                   req.keep_alive, http10);
        return;
      }
      log_request(req.request_line, 200);
      std::string& out = output_buffer();
      const std::size_t before = out.size();
      response_head head(out, 200);
      head.field("Content-Type", "text/html; charset=utf-8");
      head.content_length(page->size());
      head.finish(req.keep_alive, http10);
      if (!head_only) out += *page;
      out_weight_ += out.size() - before;
      break;
    }
    case resolved_path::kind::file: {
      const std::string_view mime = guess_mime_type(resolved.relative);
      file_source source;
      const file_cache::entry* e =
          context_.cache
              ? context_.cache->load(resolved.relative, resolved.fd.get(), resolved.st, mime)
              : nullptr;
      std::string etag;
      std::string last_modified;
      if (e) {
        source.st = &e->st;
        source.etag = e->etag;
        source.last_modified = e->last_modified;
        source.cached = true;
        source.body = e->body;
        source.fields = e->fields;
        source.entry = e;
      } else {
        etag = make_etag(resolved.st);
        last_modified = format_http_date(resolved.st.st_mtim.tv_sec);
        source.st = &resolved.st;
        source.etag = etag;
        source.last_modified = last_modified;
        source.fd = &resolved.fd;
      }
      source.mime = mime;
      serve_file(req, source);
      return;
    }
  }
  ++responses_;
  if (!req.keep_alive) closing_ = true;
}

bool session::serve_from_cache(const request& req) {
  // A trailing '/' names a directory (or a file that is "not found"): those
  // are not cached, resolve() answers them.
  if (req.path.empty() || req.path.back() == '/') return false;
  const file_cache::entry* e = context_.cache->find_raw(context_.root->fd(), req.path);
  if (!e) e = find_normalised(req.path);
  if (!e) return false;
  if (!req.maybe_conditional && req.keep_alive && req.version_minor != 0) {
    // The usual hit, a plain GET or HEAD on a keep-alive HTTP/1.1
    // connection: the prebuilt answer (what serve_file() would write).
    std::string_view answer = e->ok_response(now_);
    if (req.method == "HEAD") answer.remove_suffix(e->body.size());
    output_buffer() += answer;
    out_weight_ += answer.size();
    log_request(req.request_line, 200, req.plain_request_line);
    ++responses_;
    return true;
  }
  serve_cached(req, *e);
  return true;
}

// The helpers of serve_from_cache() that the usual hit does not need, out
// of line so that it does not pay for their frames (strings, file_source).
const file_cache::entry* session::find_normalised(std::string_view raw_path) {
  // Escapes, "." or ".." segments, or not cached yet.
  std::string decoded;
  std::string_view path = raw_path;
  if (path.find('%') != std::string_view::npos) {
    decoded = percent_decode(path);
    path = decoded;
  }
  std::string relative;
  if (!normalize_path(path, relative) || relative.empty()) return nullptr;
  return context_.cache->find(context_.root->fd(), relative);
}

void session::serve_cached(const request& req, const file_cache::entry& entry) {
  const file_cache::entry* e = &entry;
  file_source source;
  source.st = &e->st;
  source.etag = e->etag;
  source.last_modified = e->last_modified;
  source.mime = e->mime;
  source.cached = true;
  source.body = e->body;
  source.fields = e->fields;
  source.entry = e;
  serve_file(req, source);
}

void session::serve_file(const request& req, const file_source& file) {
  const bool head_only = req.method == "HEAD";
  const bool http10 = req.version_minor == 0;
  const auto size = static_cast<std::uint64_t>(file.st->st_size);
  const std::time_t mtime = file.st->st_mtim.tv_sec;
  const std::string_view etag = file.etag;
  const std::string_view last_modified = file.last_modified;

  // RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it.
  bool not_modified = false;
  if (!req.maybe_conditional) {
    // A plain GET or HEAD (the parser saw none of the fields below).
  } else if (const header_field* inm = req.find("If-None-Match")) {
    not_modified = if_none_match_matches(inm->value, etag);
  } else if (const header_field* ims = req.find("If-Modified-Since")) {
    not_modified = not_modified_since(ims->value, mtime);
  }
  if (not_modified) {
    log_request(req.request_line, 304);
    std::string& out = output_buffer();
    const std::size_t before = out.size();
    response_head head(out, 304);
    head.field("ETag", etag);
    head.field("Last-Modified", last_modified);
    head.finish(req.keep_alive, http10);
    out_weight_ += out.size() - before;
    ++responses_;
    if (!req.keep_alive) closing_ = true;
    return;
  }

  range_request range;
  if (const header_field* r = req.maybe_conditional ? req.find("Range") : nullptr)
    if (if_range_allows(req.header("If-Range"), etag, mtime)) range = parse_range(r->value, size);
  if (range.result == range_request::kind::unsatisfiable) {
    send_error(416, "Requested Range Not Satisfiable", req.request_line, head_only, req.keep_alive,
               http10, "Content-Range: bytes */" + std::to_string(size) + "\r\n");
    return;
  }
  const bool partial = range.result == range_request::kind::satisfiable;
  const std::uint64_t first = partial ? range.range.first : 0;
  const std::uint64_t count = partial ? range.range.length() : size;
  const int status = partial ? 206 : 200;

  std::string& out = output_buffer();
  const std::size_t before = out.size();
  if (!partial && file.entry != nullptr && req.keep_alive && !http10) {
    // Prebuilt by the cache: see file_cache::entry::response.
    const std::string_view answer = file.entry->ok_response(now_);
    out += head_only ? answer.substr(0, answer.size() - file.body.size()) : answer;
    out_weight_ += out.size() - before;
    log_request(req.request_line, status, req.plain_request_line);
    ++responses_;
    return;
  }
  response_head head(out, status);
  if (!partial && !file.fields.empty()) {
    head.raw(file.fields);
  } else {
    append_file_fields(out, file.mime, count, last_modified, etag);
  }
  if (partial) head.field("Content-Range", content_range(first, range.range.last, size));
  head.finish(req.keep_alive, http10);

  if (!head_only && count > 0 && file.cached) {
    out += file.body.substr(static_cast<std::size_t>(first), static_cast<std::size_t>(count));
  } else if (!head_only && count > 0 && count <= context_.config.inline_file_max) {
    // Small body: one pread into the batch buffer.
    const std::size_t body_at = out.size();
    out.resize(body_at + static_cast<std::size_t>(count));
    std::size_t got = 0;
    while (got < count) {
      const ssize_t n =
          ::pread(file.fd->get(), out.data() + body_at + got, static_cast<std::size_t>(count) - got,
                  static_cast<off_t>(first + got));
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;  // EOF (the file shrank) or an I/O error
      }
    }
    if (got != count) {
      out.resize(before);
      send_error(500, "Error reading file", req.request_line, head_only, false, http10);
      return;
    }
  }
  out_weight_ += out.size() - before;
  log_request(req.request_line, status, req.plain_request_line);
  if (!head_only && !file.cached && count > context_.config.inline_file_max)
    queue_file(std::move(*file.fd), first, count);
  ++responses_;
  if (!req.keep_alive) closing_ = true;
}

}  // namespace pysock::http
