#include "core/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace opensense {
namespace {

TEST(Metrics, RendersPrometheusText) {
  MetricsRegistry r;
  r.GetCounter("opensense_ingest_readings_total", "Readings accepted.").Inc(3);
  r.GetCounter("opensense_ingest_rejected_total", "Readings rejected.", {{"reason", "not_finite"}}).Inc();
  r.GetGauge("opensense_writer_queue_readings", "Queued readings.").Set(12);
  auto& h = r.GetHistogram("opensense_http_request_seconds", "Latency.", {{"route", "/x"}}, {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE opensense_ingest_readings_total counter\nopensense_ingest_readings_total 3\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("opensense_ingest_rejected_total{reason=\"not_finite\"} 1"), std::string::npos);
  EXPECT_NE(text.find("opensense_writer_queue_readings 12"), std::string::npos);
  EXPECT_NE(text.find("opensense_http_request_seconds_bucket{route=\"/x\",le=\"0.1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("opensense_http_request_seconds_bucket{route=\"/x\",le=\"1\"} 2"), std::string::npos);
  EXPECT_NE(text.find("opensense_http_request_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("opensense_http_request_seconds_count{route=\"/x\"} 3"), std::string::npos);
}

TEST(Metrics, SameNameAndLabelsIsTheSameInstrumentAndCountsAreExactUnderThreads) {
  MetricsRegistry r;
  Counter& a = r.GetCounter("c_total", "x", {{"k", "v"}});
  Counter& b = r.GetCounter("c_total", "x", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { for (int i = 0; i < 10000; ++i) a.Inc(); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.Value(), 40000u);
}

TEST(Metrics, LabelValuesAreEscaped) {
  MetricsRegistry r;
  r.GetCounter("e_total", "x", {{"path", "a\"b\\c\nd"}}).Inc();
  EXPECT_NE(r.RenderPrometheus().find(R"(e_total{path="a\"b\\c\nd"} 1)"), std::string::npos);
}

}  // namespace
}  // namespace opensense
