// The bounded pool of threads that runs handlers and stream producers, apart from the io
// threads. Internal to the server.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace opensense::http {

class WorkerPool {
 public:
  explicit WorkerPool(std::size_t max_queued) : max_queued_(max_queued) {}
  ~WorkerPool() { Stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Start(int threads);

  // Queues a task. False when the pool is stopped, or when `max_queued` tasks are already
  // waiting and `bypass_limit` is false (a stream's next chunk bypasses it: the stream has
  // already been admitted).
  bool Post(std::function<void()> task, bool bypass_limit = false);

  // Discards the tasks still waiting, waits for the running ones and joins the threads.
  // Idempotent. Must not be called from a worker thread.
  void Stop();

 private:
  void Run();

  const std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace opensense::http
