// The server on Boost.Beast + Asio. Each connection is a Session: a chain of asynchronous
// operations on its own strand, run by the io threads. A Session only reads, parses, writes and
// enforces limits; the Router and the handlers run on the WorkerPool, and their result is posted
// back to the Session's strand.
//
// One request at a time per connection (pipelined requests wait in the read buffer):
//
//   WaitForRequest -> StartHeader -> OnHeader -> [100 Continue] -> OnBody -> (worker: Handle)
//     -> WriteResponse -> OnWritten -> WaitForRequest | LingeringClose
//                      -> StartStream -> ProduceChunk (worker) -> OnChunk -> OnChunkWritten ...
#include "api/http/server.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "api/http/wire.hpp"
#include "api/http/worker_pool.hpp"

namespace opensense::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// Connections answered 503 (beyond max_connections) at the same time; beyond this they are
// closed without an answer, so a connection flood cannot turn into a write flood.
constexpr std::size_t kMaxRejecting = 64;
// After an answer that ends a connection, unread request bytes are read and dropped for a
// moment before closing, so that the client reads the answer instead of a connection reset.
constexpr std::chrono::milliseconds kMaxLinger{1000};
constexpr std::size_t kMaxLingerBytes = 8 << 20;
constexpr std::size_t kReadChunk = 16 << 10;
constexpr std::size_t kKeepBufferCapacity = 64 << 10;

std::string FormatEndpoint(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category();
}

// Headers that the server owns and a handler may not set.
bool IsFramingHeader(std::string_view name) {
  return wire::EqualsIgnoreCase(name, "Content-Length") ||
         wire::EqualsIgnoreCase(name, "Transfer-Encoding") ||
         wire::EqualsIgnoreCase(name, "Connection");
}

class Session;

}  // namespace

struct Server::Impl {
  Impl(ServerOptions opts, Router r)
      : options(std::move(opts)),
        router(std::move(r)),
        acceptor(net::make_strand(ioc)),
        accept_retry(acceptor.get_executor()),
        workers(options.max_queued_requests) {}

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void Shutdown();
  template <typename F>
  void ForEachSession(F f);
  void Deregister(Session* session, bool rejecting);

  const ServerOptions options;
  const Router router;
  tcp::endpoint bound;
  std::string bound_text;
  std::atomic<bool> stopping{false};

  // Live sessions. Declared before the io_context: sessions still held by its pending handlers
  // are destroyed with it and deregister here.
  std::mutex sessions_mu;
  std::condition_variable sessions_cv;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::size_t serving = 0;    // sessions counted against max_connections
  std::size_t rejecting = 0;  // sessions answering 503

  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  net::steady_timer accept_retry;
  // Declared after the io_context: tasks it drops may release sessions, which need the context.
  WorkerPool workers;
  std::vector<std::thread> io_threads;

  std::mutex shutdown_mu;
  bool started = false;
  bool shut_down = false;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& server, tcp::socket socket, bool reject)
      : server_(server),
        options_(server.options),
        stream_(std::move(socket)),
        executor_(stream_.get_executor()),
        poll_timer_(executor_),
        reject_(reject) {
    beast::error_code ec;
    tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = FormatEndpoint(peer);
  }

  ~Session() { server_.Deregister(this, reject_); }

  const net::any_io_executor& executor() const { return executor_; }

  void Begin() {
    net::post(executor_, [self = shared_from_this()] { self->Start(); });
  }

  // The server is shutting down: an idle connection (or one already answered and closing)
  // closes now, a busy one after its response.
  void OnServerStopping() {
    if (phase_ == Phase::kWaiting || phase_ == Phase::kClosing) Close();
  }

  // The drain timeout has passed.
  void ForceClose() { Close(); }

 private:
  enum class Phase { kWaiting, kReading, kHandling, kWriting, kStreaming, kClosing, kClosed };

  void Start() {
    accepted_ = Clock::now();
    if (reject_) {
      req_.remote_address = remote_;
      started_ = accepted_;
      SendError(503, "unavailable", "too many connections; retry later", /*close=*/true);
      return;
    }
    header_deadline_ = accepted_ + options_.header_timeout;
    WaitForRequest();
  }

  // Waits for the first byte of the next request: up to the header timeout on a new connection,
  // up to the idle timeout on a kept-alive one.
  void WaitForRequest() {
    phase_ = Phase::kWaiting;
    if (server_.stopping.load()) {
      Close();
      return;
    }
    if (buffer_.size() > 0) {  // a pipelined request is already here
      if (!first_) header_deadline_ = Clock::now() + options_.header_timeout;
      StartHeader();
      return;
    }
    if (buffer_.capacity() > kKeepBufferCapacity) buffer_.shrink_to_fit();
    if (first_) {
      stream_.expires_at(header_deadline_);
    } else {
      stream_.expires_after(options_.idle_timeout);
    }
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->OnFirstBytes(ec, n);
                            });
  }

  void OnFirstBytes(beast::error_code ec, std::size_t n) {
    buffer_.commit(n);
    if (ec || phase_ == Phase::kClosed) {  // closed by the client, idle timeout, or shutdown
      Close();
      return;
    }
    if (!first_) header_deadline_ = Clock::now() + options_.header_timeout;
    StartHeader();
  }

  void StartHeader() {
    phase_ = Phase::kReading;
    req_ = Request{};
    req_.remote_address = remote_;
    req_.id = NewRequestId();
    route_.clear();
    status_ = 0;
    version_ = 11;
    keep_alive_ = false;
    head_request_ = false;
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(options_.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(static_cast<std::uint64_t>(options_.max_body_bytes));
    stream_.expires_at(header_deadline_);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    started_ = Clock::now();
    first_ = false;
    if (ec) {
      OnReadError(ec);
      return;
    }
    FillRequestHead();
    // RFC 9112 6.1: a request body framed by anything but chunked cannot be delimited; answering
    // as if it had no body would desynchronise the connection from the proxy in front.
    if (parser_->get().count(bhttp::field::transfer_encoding) > 0 && !parser_->chunked()) {
      SendError(400, "invalid_argument", "unsupported Transfer-Encoding (only chunked)", true);
      return;
    }
    if (parser_->is_done()) {
      OnBody({});
      return;
    }
    auto expect = parser_->get()[bhttp::field::expect];
    if (version_ >= 11 && wire::EqualsIgnoreCase(SV(expect), "100-continue")) {
      stream_.expires_after(options_.write_timeout);
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) {
                           self->Close();
                           return;
                         }
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(options_.body_timeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnBody(ec); });
  }

  void FillRequestHead() {
    const auto& msg = parser_->get();
    req_.method = std::string(SV(msg.method_string()));
    req_.target = std::string(SV(msg.target()));
    req_.headers.clear();
    for (const auto& field : msg) {
      req_.headers.emplace_back(std::string(SV(field.name_string())),
                                std::string(SV(field.value())));
    }
    version_ = msg.version();
    head_request_ = req_.method == "HEAD";
  }

  // A request that could not be read. Nothing is answered to a client that went away or was too
  // slow; malformed and oversized requests are answered, then the connection is closed (the
  // rest of the request is not read).
  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) {
      SendError(431, "header_too_large",
                fmt::format("request header exceeds {} bytes", options_.max_header_bytes), true);
    } else if (ec == bhttp::error::body_limit) {
      FillRequestHead();
      SendError(413, "payload_too_large",
                fmt::format("request body exceeds {} bytes", options_.max_body_bytes), true);
    } else if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
               !IsHttpParseError(ec)) {
      Close();  // closed by the client, a timeout (slowloris), a reset, or shutdown
    } else {
      SendError(400, "invalid_argument", "malformed request: " + ec.message(), true);
    }
  }

  void OnBody(beast::error_code ec) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    stream_.expires_never();
    auto msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive();
    req_.body = std::move(msg.body());
    if (auto parsed = wire::ParseTarget(wire::OriginForm(req_.target), req_); !parsed) {
      SendError(400, "invalid_argument", parsed.error().message, false);
      return;
    }
    phase_ = Phase::kHandling;
    auto self = shared_from_this();
    bool queued = server_.workers.Post([self] {
      ScopedRequestId scoped(self->req_.id);
      std::string route;
      Response res = self->server_.router.Handle(self->req_, &route);
      net::post(self->executor_, [self, res = std::move(res), route = std::move(route)]() mutable {
        self->route_ = std::move(route);
        self->WriteResponse(std::move(res));
      });
    });
    if (!queued) {
      SendError(503, "unavailable", "server busy; retry later", false);
    }
  }

  void SendError(int status, std::string_view code, std::string_view message, bool close) {
    route_.clear();
    if (close) close_after_ = true;
    Response res = Response::Error(status, code, message);
    if (status == 503) res.headers.emplace_back("Retry-After", "1");
    WriteResponse(std::move(res));
  }

  // Replaces a response the server cannot send (a handler bug) with a 500.
  bool ValidateResponse(Response& res) {
    const char* problem = nullptr;
    if (res.status < 200 || res.status > 599) problem = "status outside 200..599";
    for (const auto& [name, value] : res.headers) {
      if (!wire::IsValidHeaderName(name) || !wire::IsValidHeaderValue(value)) {
        problem = "invalid header name or value";
      }
    }
    if (problem == nullptr) return true;
    spdlog::error("http: handler for {} {} returned an invalid response ({}): answering 500",
                  req_.method, route_, problem);
    res = Response::Error(500, "internal", "internal error; the server log has the details");
    return false;
  }

  template <typename Message>
  void SetHeaders(Message& msg, const Response& res, bool& close) {
    for (const auto& [name, value] : res.headers) {
      if (IsFramingHeader(name)) {
        if (wire::EqualsIgnoreCase(name, "Connection") && wire::EqualsIgnoreCase(value, "close")) {
          close = true;
        }
        continue;
      }
      msg.insert(name, value);
    }
    for (const auto& [name, value] : options_.default_headers) {
      if (msg.find(name) == msg.end()) msg.set(name, value);
    }
    if (!req_.id.empty()) msg.set("X-Request-Id", req_.id);
  }

  void WriteResponse(Response res) {
    if (phase_ == Phase::kClosed) {  // the connection was closed meanwhile (drain timeout)
      Finish();
      return;
    }
    phase_ = Phase::kWriting;
    ValidateResponse(res);
    status_ = res.status;
    bool close = close_after_ || !keep_alive_ || server_.stopping.load();
    if (res.stream && !head_request_) {
      StartStream(std::move(res), close);
      return;
    }
    auto msg = std::make_unique<bhttp::response<bhttp::string_body>>();
    msg->result(static_cast<unsigned>(res.status));
    msg->version(version_ == 10 ? 10 : 11);
    SetHeaders(*msg, res, close);
    bool bodyless = res.status == 204 || res.status == 304;
    if (!bodyless && !res.stream) {
      msg->content_length(res.body.size());
      if (!head_request_) msg->body() = std::move(res.body);
    }
    msg->keep_alive(!close);
    close_after_ = close;
    response_ = std::move(msg);
    stream_.expires_after(options_.write_timeout);
    bhttp::async_write(
        stream_, *response_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnWritten(ec); });
  }

  void OnWritten(beast::error_code ec) {
    response_.reset();
    Finish();
    if (ec) {
      Close();
    } else if (close_after_) {
      LingeringClose();
    } else {
      WaitForRequest();
    }
  }

  // Streams: the header now, then one chunk per producer call on a worker thread.
  void StartStream(Response res, bool close) {
    phase_ = Phase::kStreaming;
    stream_fn_ = std::move(res.stream);
    stream_woken_ = false;
    stream_waiting_ = false;
    stream_idle_poll_ = options_.stream_poll_interval;
    if (res.stream_wakeup) {
      if (res.stream_idle_poll.count() > 0) stream_idle_poll_ = res.stream_idle_poll;
      std::weak_ptr<Session> weak = weak_from_this();
      const std::uint64_t generation = ++stream_generation_;
      res.stream_wakeup([weak, generation] {
        if (auto self = weak.lock()) {
          net::post(self->executor_, [self, generation] { self->OnWake(generation); });
        }
      });
    }
    auto head = std::make_unique<bhttp::response<bhttp::empty_body>>();
    head->result(static_cast<unsigned>(res.status));
    head->version(version_ == 10 ? 10 : 11);
    SetHeaders(*head, res, close);
    chunked_ = version_ >= 11;
    if (chunked_) {
      head->chunked(true);
    } else {
      close = true;  // HTTP/1.0: the body ends when the connection does
    }
    head->keep_alive(!close);
    close_after_ = close;
    stream_head_ = std::move(head);
    stream_serializer_ =
        std::make_unique<bhttp::response_serializer<bhttp::empty_body>>(*stream_head_);
    stream_.expires_after(options_.write_timeout);
    bhttp::async_write_header(stream_, *stream_serializer_,
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                self->OnStreamHeader(ec);
                              });
  }

  void OnStreamHeader(beast::error_code ec) {
    stream_serializer_.reset();
    stream_head_.reset();
    if (ec) {
      EndStream(/*ok=*/false);
      return;
    }
    WatchPeer();
    ProduceChunk();
  }

  // While a stream runs nothing is read, so a client that went away would only be noticed at the
  // next write; a live stream may write nothing for long. Readable with nothing to read means
  // the client closed: stop the stream. (Readable with data means a pipelined request: leave it
  // in the socket for later.)
  void WatchPeer() {
    ++watch_generation_;
    stream_.socket().async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this(), generation = watch_generation_](beast::error_code ec) {
          if (ec || generation != self->watch_generation_ || self->phase_ != Phase::kStreaming) {
            return;
          }
          beast::error_code avail_ec;
          std::size_t available = self->stream_.socket().available(avail_ec);
          if (avail_ec || available == 0) self->Close();
        });
  }

  void ProduceChunk() {
    if (phase_ == Phase::kClosed) {
      EndStream(false);
      return;
    }
    auto self = shared_from_this();
    bool queued = server_.workers.Post(
        [self] {
          std::string chunk;
          bool more = false;
          bool failed = false;
          try {
            more = self->stream_fn_(chunk);
          } catch (const std::exception& e) {
            spdlog::error("http: stream producer for {} {} threw: {}", self->req_.method,
                          self->route_, e.what());
            failed = true;
          } catch (...) {
            spdlog::error("http: stream producer for {} {} threw a non-standard exception",
                          self->req_.method, self->route_);
            failed = true;
          }
          net::post(self->executor_, [self, chunk = std::move(chunk), more, failed]() mutable {
            self->OnChunk(std::move(chunk), more, failed);
          });
        },
        /*bypass_limit=*/true);
    if (!queued) EndStream(false);  // the pool has stopped
  }

  void OnChunk(std::string chunk, bool more, bool failed) {
    if (failed || phase_ == Phase::kClosed) {
      EndStream(false);
      return;
    }
    if (chunk.empty() && more) {  // nothing yet: ask again later, without holding a worker
      if (stream_woken_) {  // woken while the producer ran: there may be something now
        stream_woken_ = false;
        ProduceChunk();
        return;
      }
      stream_waiting_ = true;
      poll_timer_.expires_after(stream_idle_poll_);
      poll_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        self->stream_waiting_ = false;
        // A wake cancels the timer: operation_aborted while still streaming.
        if (self->phase_ == Phase::kClosed || (ec && ec != net::error::operation_aborted)) {
          self->EndStream(false);
          return;
        }
        self->stream_woken_ = false;
        self->ProduceChunk();
      });
      return;
    }
    stream_more_ = more;
    if (!more) stream_fn_ = nullptr;
    chunk_ = std::move(chunk);
    chunk_head_.clear();
    chunk_tail_.clear();
    if (chunked_) {
      if (!chunk_.empty()) {
        chunk_head_ = fmt::format("{:x}\r\n", chunk_.size());
        chunk_tail_ = "\r\n";
      }
      if (!more) chunk_tail_ += "0\r\n\r\n";
    }
    std::array<net::const_buffer, 3> buffers{net::buffer(chunk_head_), net::buffer(chunk_),
                                             net::buffer(chunk_tail_)};
    stream_.expires_after(options_.write_timeout);
    net::async_write(stream_, buffers,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->OnChunkWritten(ec);
                     });
  }

  // The producer's `wake` (Response::stream_wakeup), on the strand.
  void OnWake(std::uint64_t generation) {
    if (generation != stream_generation_ || phase_ != Phase::kStreaming) return;
    stream_woken_ = true;
    if (stream_waiting_) poll_timer_.cancel();
  }

  void OnChunkWritten(beast::error_code ec) {
    chunk_.clear();
    if (ec || phase_ == Phase::kClosed) {
      EndStream(false);
      return;
    }
    if (stream_more_) {
      ProduceChunk();
      return;
    }
    EndStream(true);
  }

  void EndStream(bool ok) {
    stream_fn_ = nullptr;
    ++stream_generation_;  // a late wake does nothing
    ++watch_generation_;
    Finish();
    if (!ok) {
      Close();
      return;
    }
    beast::error_code ignored;
    stream_.socket().cancel(ignored);  // the peer watch
    if (close_after_) {
      LingeringClose();
    } else {
      WaitForRequest();
    }
  }

  // Reports the request to the observer, once.
  void Finish() {
    if (status_ == 0) return;
    if (options_.on_complete) {
      auto duration =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_);
      try {
        ScopedRequestId scoped(req_.id);
        options_.on_complete(req_, route_, status_, duration);
      } catch (const std::exception& e) {
        spdlog::error("http: on_complete threw: {}", e.what());
      } catch (...) {
        spdlog::error("http: on_complete threw a non-standard exception");
      }
    }
    status_ = 0;
  }

  // Ends the connection after an answer: send FIN, read and drop what the client still sends
  // (briefly), then close, so the client reads the answer rather than a reset.
  void LingeringClose() {
    phase_ = Phase::kClosing;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      Close();
      return;
    }
    stream_.expires_after(std::min<std::chrono::milliseconds>(kMaxLinger, options_.header_timeout));
    Drain();
  }

  void Drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(kReadChunk), [self = shared_from_this()](
                                                             beast::error_code ec, std::size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kMaxLingerBytes || self->phase_ == Phase::kClosed) {
        self->Close();
        return;
      }
      self->buffer_.commit(n);
      self->Drain();
    });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    poll_timer_.cancel();
    stream_.close();
  }

  Server::Impl& server_;
  const ServerOptions& options_;
  beast::tcp_stream stream_;
  net::any_io_executor executor_;
  net::steady_timer poll_timer_;
  const bool reject_;
  std::string remote_;

  Phase phase_ = Phase::kWaiting;
  bool first_ = true;  // no request has started on this connection yet
  Clock::time_point accepted_;
  Clock::time_point header_deadline_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;

  // The current request. While a worker runs the handler, only the worker touches req_.
  Request req_;
  std::string route_;
  Clock::time_point started_;
  int status_ = 0;  // the answer's status; 0 once reported
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_request_ = false;
  bool close_after_ = false;  // close the connection after the current answer
  std::unique_ptr<bhttp::response<bhttp::string_body>> response_;

  // The current stream. stream_fn_ is only touched by one producer call at a time, and reset on
  // the strand only when no producer call is running.
  std::function<bool(std::string&)> stream_fn_;
  std::unique_ptr<bhttp::response<bhttp::empty_body>> stream_head_;
  std::unique_ptr<bhttp::response_serializer<bhttp::empty_body>> stream_serializer_;
  bool chunked_ = true;
  bool stream_more_ = false;
  std::string chunk_head_, chunk_, chunk_tail_;
  std::uint64_t watch_generation_ = 0;
  // Wake-ups of a live stream (Response::stream_wakeup): which stream a wake is for, whether one
  // came since the producer was last called, and whether the poll timer is waiting for one.
  std::uint64_t stream_generation_ = 0;
  bool stream_woken_ = false;
  bool stream_waiting_ = false;
  std::chrono::milliseconds stream_idle_poll_{100};
  std::size_t lingered_ = 0;
};

Result<tcp::endpoint> ParseListen(net::io_context& ioc, const std::string& listen) {
  auto bad = [&](std::string why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid listen address '{}': {}", listen, why));
  };
  std::string host;
  std::string port;
  auto split = wire::SplitHostPort(listen);
  if (!split) return bad(split.error().message);
  host = std::move(split->first);
  port = std::move(split->second);
  if (host.empty()) return bad("missing host (use 0.0.0.0 for every interface)");
  unsigned long port_number = 0;
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      (port_number = std::stoul(port)) > 65535) {
    return bad("port must be a number from 0 to 65535");
  }
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, static_cast<std::uint16_t>(port_number));
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port, ec);
  if (ec || results.empty()) return bad("cannot resolve host: " + ec.message());
  return results.begin()->endpoint();
}

}  // namespace

void Server::Impl::DoAccept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void Server::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || stopping.load() || !acceptor.is_open()) return;
  if (ec) {
    // Typically out of file descriptors: wait a little instead of spinning.
    spdlog::warn("http: accept on {} failed: {}", bound_text, ec.message());
    accept_retry.expires_after(std::chrono::milliseconds(100));
    accept_retry.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping.load()) DoAccept();
    });
    return;
  }
  bool reject = false;
  bool drop = false;
  {
    std::lock_guard<std::mutex> lock(sessions_mu);
    if (serving >= options.max_connections) {
      if (rejecting >= kMaxRejecting) {
        drop = true;
      } else {
        reject = true;
        ++rejecting;
      }
    } else {
      ++serving;
    }
  }
  if (drop) {
    beast::error_code ignored;
    socket.close(ignored);
  } else {
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(*this, std::move(socket), reject);
    {
      std::lock_guard<std::mutex> lock(sessions_mu);
      sessions.emplace(session.get(), session);
    }
    session->Begin();
  }
  DoAccept();
}

void Server::Impl::Deregister(Session* session, bool was_rejecting) {
  std::lock_guard<std::mutex> lock(sessions_mu);
  sessions.erase(session);
  if (was_rejecting) {
    --rejecting;
  } else {
    --serving;
  }
  if (sessions.empty()) sessions_cv.notify_all();
}

template <typename F>
void Server::Impl::ForEachSession(F f) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(sessions_mu);
    live.reserve(sessions.size());
    for (auto& [ptr, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  // Outside the lock: the last reference to a session may be dropped here.
  for (auto& s : live) f(s);
}

void Server::Impl::Shutdown() {
  std::lock_guard<std::mutex> guard(shutdown_mu);
  if (shut_down || !started) return;
  shut_down = true;
  auto begin = Clock::now();
  stopping.store(true);
  net::post(acceptor.get_executor(), [this] {
    beast::error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
  });
  ForEachSession([](const std::shared_ptr<Session>& s) {
    net::post(s->executor(), [s] { s->OnServerStopping(); });
  });
  std::size_t left = 0;
  {
    std::unique_lock<std::mutex> lock(sessions_mu);
    sessions_cv.wait_until(lock, begin + options.drain_timeout, [&] { return sessions.empty(); });
    left = sessions.size();
  }
  if (left > 0) {
    spdlog::warn("http: drain timeout ({} ms) passed; closing {} connection(s)",
                 options.drain_timeout.count(), left);
    ForEachSession([](const std::shared_ptr<Session>& s) {
      net::post(s->executor(), [s] { s->ForceClose(); });
    });
  }
  workers.Stop();  // drops queued requests; waits for running handlers
  {
    std::unique_lock<std::mutex> lock(sessions_mu);
    sessions_cv.wait_for(lock, std::chrono::seconds(2), [&] { return sessions.empty(); });
  }
  work.reset();
  ioc.stop();
  for (std::thread& t : io_threads) t.join();
  io_threads.clear();
  spdlog::info("http: stopped listening on {}", bound_text);
}

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options, Router router) {
  auto invalid = [](std::string what) {
    return MakeError(ErrorCode::kInvalidArgument, "http server options: " + what);
  };
  if (options.io_threads < 1) return invalid("io_threads must be at least 1");
  if (options.worker_threads < 1) return invalid("worker_threads must be at least 1");
  if (options.max_connections < 1) return invalid("max_connections must be at least 1");
  if (options.max_header_bytes < 64) return invalid("max_header_bytes must be at least 64");
  for (auto [name, value] : {std::pair{"header_timeout", options.header_timeout},
                             std::pair{"body_timeout", options.body_timeout},
                             std::pair{"idle_timeout", options.idle_timeout},
                             std::pair{"write_timeout", options.write_timeout},
                             std::pair{"stream_poll_interval", options.stream_poll_interval}}) {
    if (value.count() <= 0) return invalid(std::string(name) + " must be positive");
  }
  if (options.drain_timeout.count() < 0) return invalid("drain_timeout must not be negative");

  auto impl = std::make_unique<Impl>(std::move(options), std::move(router));
  const std::string& listen = impl->options.listen;
  OS_ASSIGN_OR_RETURN(tcp::endpoint endpoint, ParseListen(impl->ioc, listen));

  beast::error_code ec;
  auto fail = [&](const char* step) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot listen on {}: {} ({})", listen, ec.message(), step));
  };
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("socket");
  impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR");
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  impl->bound = impl->acceptor.local_endpoint(ec);
  if (ec) return fail("getsockname");
  impl->bound_text = FormatEndpoint(impl->bound);
  if (impl->options.on_listening) impl->options.on_listening(impl->bound_text);

  impl->work.emplace(impl->ioc.get_executor());
  impl->workers.Start(impl->options.worker_threads);
  Impl* raw = impl.get();
  for (int i = 0; i < impl->options.io_threads; ++i) {
    impl->io_threads.emplace_back([raw] {
      pthread_setname_np(pthread_self(), "http-io");
      while (true) {
        try {
          raw->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: io thread: {}", e.what());
        }
      }
    });
  }
  impl->started = true;
  net::post(impl->acceptor.get_executor(), [raw] { raw->DoAccept(); });
  spdlog::info("http: listening on {} ({} io thread(s), {} worker(s))", impl->bound_text,
               impl->options.io_threads, impl->options.worker_threads);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (impl_) impl_->Shutdown();
}

std::string Server::address() const { return impl_->bound_text; }

std::uint16_t Server::port() const { return impl_->bound.port(); }

void Server::Shutdown() { impl_->Shutdown(); }

}  // namespace opensense::http
