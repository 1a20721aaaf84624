// SPDX-License-Identifier: MIT
//
// async_chat — a line-based chat room: every line a client sends goes to all
// the others, prefixed with the sender's name. Each client is two coroutines
// run together with gather(): one reads the client's lines, one writes what
// the room sends it. When the client disconnects, the reader ends with
// `disconnected`, gather() cancels the writer (it is waiting on its outbox),
// and the client leaves the room.
//
// Protocol (one line each): the newcomer gets "welcome <name>"; the others
// get "<name> joined", "<name>: <text>" and "<name> left".
//
// Usage: async_chat [host] [port] [--count N]
//   --count N   exit after N clients have left (tests use it)
// SIGINT or SIGTERM stops it cleanly.
#include <pysock/streams.hpp>

#include <csignal>
#include <deque>
#include <iostream>
#include <list>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct disconnected {};  // the client closed its side

struct member {
  std::string name;
  pysock::stream_writer writer;
  std::deque<std::string> outbox;
  pysock::event has_mail;
};

struct room {
  std::list<member*> members;
  int next_id = 1;
  long departures = 0;

  void broadcast(const member* from, const std::string& line) {
    for (member* m : members) {
      if (m == from) continue;
      m->outbox.push_back(line);
      m->has_mail.set();
    }
  }
};

pysock::task<void> receive_lines(room& r, member& me, pysock::stream_reader& reader) {
  for (;;) {
    pysock::bytes line = co_await reader.readline();
    if (line.empty()) throw disconnected{};
    if (line.back() != '\n') line += '\n';  // a last line without newline
    r.broadcast(&me, me.name + ": " + line);
  }
}

pysock::task<void> send_lines(member& me) {
  for (;;) {
    while (me.outbox.empty()) {
      me.has_mail.clear();
      co_await me.has_mail.wait();  // where the cancellation lands on disconnect
    }
    while (!me.outbox.empty()) {
      me.writer.write(me.outbox.front());
      me.outbox.pop_front();
    }
    co_await me.writer.drain();  // a slow client slows only its own writer
  }
}

pysock::task<void> client(room& r, pysock::stream_reader reader, pysock::stream_writer writer) {
  member me;
  me.name = "client" + std::to_string(r.next_id++);
  me.writer = writer;
  r.members.push_back(&me);
  writer.write("welcome " + me.name + "\n");
  r.broadcast(&me, me.name + " joined\n");
  try {
    co_await pysock::gather(receive_lines(r, me, reader), send_lines(me));
  } catch (const disconnected&) {
  } catch (const pysock::connection_error&) {
  }
  r.members.remove(&me);
  r.broadcast(&me, me.name + " left\n");
  ++r.departures;
  writer.close();
  co_await writer.wait_closed();
}

pysock::task<void> serve(const std::string& host, int port, long count) {
  pysock::event_loop& loop = pysock::get_running_loop();
  room chat;
  pysock::server* running = nullptr;
  auto handler = [&](pysock::stream_reader r, pysock::stream_writer w) -> pysock::task<void> {
    co_await client(chat, std::move(r), std::move(w));
    if (count > 0 && chat.departures >= count && running != nullptr) running->close();
  };
  pysock::server server = co_await pysock::start_server(handler, host, port);
  running = &server;
  for (int sig : {SIGINT, SIGTERM})
    loop.add_signal_handler(sig, [&server] {
      server.close();
      server.close_clients();  // cancels every client's gather: all leave
    });
  std::cout << "async_chat listening on " << server.sockname() << std::endl;
  co_await server.serve_forever();
  co_await server.wait_closed();
  for (int sig : {SIGINT, SIGTERM}) loop.remove_signal_handler(sig);
  std::cout << "async_chat stopped after " << chat.departures << " departure(s)" << std::endl;
}

int usage() {
  std::cerr << "usage: async_chat [host] [port] [--count N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8888;
  long count = -1;
  try {
    std::vector<std::string_view> positional;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--count" && i + 1 < argc) {
        count = std::stol(argv[++i]);
      } else if (arg.starts_with("-")) {
        return usage();
      } else {
        positional.push_back(arg);
      }
    }
    if (positional.size() > 2) return usage();
    if (!positional.empty()) host = std::string(positional[0]);
    if (positional.size() > 1) port = std::stoi(std::string(positional[1]));
  } catch (const std::exception&) {
    return usage();
  }
  try {
    pysock::run(serve(host, port, count));
  } catch (const std::exception& e) {
    std::cerr << "async_chat: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
