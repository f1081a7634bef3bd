#include "api/http/worker_pool.hpp"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <exception>

namespace opensense::http {

void WorkerPool::Start(int threads) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "http-worker");
      Run();
    });
  }
}

bool WorkerPool::Post(std::function<void()> task, bool bypass_limit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return false;
    if (!bypass_limit && queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void WorkerPool::Stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  dropped.clear();  // outside the lock: dropping a task may release a connection
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::Run() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
      if (stopped_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("http: worker task threw: {}", e.what());
    } catch (...) {
      spdlog::error("http: worker task threw a non-standard exception");
    }
  }
}

}  // namespace opensense::http
