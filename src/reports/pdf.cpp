// The PDF rendering of a ReportData: cairo draws (vector), pango sets the text (DejaVu fonts).
// Rendered twice: the first pass only counts pages (no drawing), so that every footer can say
// "page n of m".
#include <cairo-pdf.h>
#include <cairo.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "reports/report.hpp"

namespace opensense::reports {

namespace {

constexpr double kMargin = 42;
constexpr double kFooterHeight = 30;
constexpr double kRowHeight = 12.5;

std::string UnitText(const std::string& unit) {
  if (unit == "Cel" || unit.empty()) return "°C";
  return unit;
}

std::string Num1(double v) { return fmt::format("{:.1f}", v); }

std::string LevelName(Resolution r) {
  switch (r) {
    case Resolution::k5m: return "5-minute rollups";
    case Resolution::k1h: return "1-hour rollups";
    case Resolution::k1d: return "1-day rollups";
    default: return "raw readings";
  }
}

std::string RangeText(const DeviceProfile& p, const std::string& unit) {
  if (p.target_min && p.target_max) return fmt::format("{} to {} {}", Num1(*p.target_min), Num1(*p.target_max), unit);
  if (p.target_max) return fmt::format("at most {} {}", Num1(*p.target_max), unit);
  if (p.target_min) return fmt::format("at least {} {}", Num1(*p.target_min), unit);
  return "not set";
}

cairo_status_t AppendToString(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}
cairo_status_t Discard(void*, const unsigned char*, unsigned int) { return CAIRO_STATUS_SUCCESS; }

struct Column {
  std::string title;
  double width;  // share of the text width
  bool right = false;
};

class Writer {
 public:
  Writer(const ReportData& r, int total_pages, std::string* out)
      : r_(r), zone_(*TimeZone::Load(r.time_zone)), total_(total_pages), drawing_(out != nullptr) {
    width_ = r.request.paper == Paper::kA4 ? 595.276 : 612.0;
    height_ = r.request.paper == Paper::kA4 ? 841.890 : 792.0;
    surface_ = out ? cairo_pdf_surface_create_for_stream(AppendToString, out, width_, height_)
                   : cairo_pdf_surface_create_for_stream(Discard, nullptr, width_, height_);
    if (out) {
      cairo_pdf_surface_set_metadata(surface_, CAIRO_PDF_METADATA_TITLE,
                                     fmt::format("Compliance report {}", r.org.name).c_str());
      cairo_pdf_surface_set_metadata(surface_, CAIRO_PDF_METADATA_CREATOR,
                                     fmt::format("OpenSense {}", r.request.software_version).c_str());
    }
    cr_ = cairo_create(surface_);
    layout_ = pango_cairo_create_layout(cr_);
    // Font sizes in points: one cairo unit of a PDF surface is one point (pango assumes 96 dpi).
    pango_cairo_context_set_resolution(pango_layout_get_context(layout_), 72);
    pango_layout_context_changed(layout_);
    regular_ = pango_font_description_from_string("DejaVu Sans 9");
    bold_ = pango_font_description_from_string("DejaVu Sans Bold 9");
    small_ = pango_font_description_from_string("DejaVu Sans 7.5");
    mono_ = pango_font_description_from_string("DejaVu Sans Mono 7");
    title_ = pango_font_description_from_string("DejaVu Sans Bold 18");
    heading_ = pango_font_description_from_string("DejaVu Sans Bold 13");
    y_ = kMargin;
  }
  ~Writer() {
    ClearCellCache();
    for (auto* f : {regular_, bold_, small_, mono_, title_, heading_}) pango_font_description_free(f);
    g_object_unref(layout_);
    cairo_destroy(cr_);
    cairo_surface_destroy(surface_);
  }

  // Returns the number of pages, or an error from cairo.
  Result<int> Run() {
    Cover();
    for (const DeviceReport& d : r_.devices) DevicePages(d);
    Closing();
    Footer();
    cairo_show_page(cr_);
    cairo_surface_finish(surface_);
    cairo_status_t st = cairo_surface_status(surface_);
    if (st != CAIRO_STATUS_SUCCESS) {
      return MakeError(ErrorCode::kInternal, fmt::format("cairo: {}", cairo_status_to_string(st)));
    }
    return page_;
  }

 private:
  double TextWidth() const { return width_ - 2 * kMargin; }
  double Bottom() const { return height_ - kMargin - kFooterHeight; }

  // Sets text into the shared layout; returns its height in points.
  double Prepare(const std::string& text, PangoFontDescription* font, double width, bool right = false,
                 bool wrap = true) {
    pango_layout_set_font_description(layout_, font);
    pango_layout_set_width(layout_, static_cast<int>(width * PANGO_SCALE));
    pango_layout_set_wrap(layout_, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_ellipsize(layout_, wrap ? PANGO_ELLIPSIZE_NONE : PANGO_ELLIPSIZE_END);
    pango_layout_set_alignment(layout_, right ? PANGO_ALIGN_RIGHT : PANGO_ALIGN_LEFT);
    pango_layout_set_text(layout_, text.data(), static_cast<int>(text.size()));
    int w = 0, h = 0;
    pango_layout_get_pixel_size(layout_, &w, &h);
    return h;
  }
  void Show(double x, double y) {
    if (!drawing_) return;
    cairo_set_source_rgb(cr_, 0, 0, 0);
    cairo_move_to(cr_, x, y);
    pango_cairo_show_layout(cr_, layout_);
  }
  // A paragraph at the current position; moves down.
  void Paragraph(const std::string& text, PangoFontDescription* font, double gap_after = 3) {
    double h = Prepare(text, font, TextWidth());
    Ensure(h);
    Show(kMargin, y_);
    y_ += h + gap_after;
  }
  void Heading(const std::string& text) {
    Ensure(40);
    y_ += 6;
    Paragraph(text, heading_, 5);
  }
  void Ensure(double h) {
    if (y_ + h > Bottom()) NewPage();
  }
  void NewPage() {
    Footer();
    cairo_show_page(cr_);
    ++page_;
    y_ = kMargin;
    if (!repeat_header_.empty()) TableHeader();
  }

  void Footer() {
    double y = height_ - kMargin - kFooterHeight + 8;
    if (drawing_) {
      cairo_set_source_rgb(cr_, 0.6, 0.6, 0.6);
      cairo_set_line_width(cr_, 0.5);
      cairo_move_to(cr_, kMargin, y);
      cairo_line_to(cr_, width_ - kMargin, y);
      cairo_stroke(cr_);
    }
    std::string left = fmt::format("{} · compliance report · {} to {} ({})", r_.org.name,
                                   zone_.FormatLocal(r_.request.from, "%Y-%m-%d %H:%M"),
                                   zone_.FormatLocal(r_.request.to, "%Y-%m-%d %H:%M"), r_.time_zone);
    Prepare(left, small_, TextWidth() * 0.8, false, false);
    Show(kMargin, y + 3);
    Prepare(fmt::format("Page {} of {}", page_, total_), small_, TextWidth(), true, false);
    Show(kMargin, y + 3);
    Prepare("SHA-256 of the stored data: " + r_.digest, mono_, TextWidth(), false, false);
    Show(kMargin, y + 13);
  }

  // ---- tables -----------------------------------------------------------------------------------
  void Table(std::vector<Column> columns) {
    repeat_header_ = std::move(columns);
    Ensure(3 * kRowHeight);
    TableHeader();
  }
  void EndTable() {
    repeat_header_.clear();
    y_ += 6;
  }
  void TableHeader() {
    double h = 0;
    for (const auto& c : repeat_header_) h = std::max(h, Prepare(c.title, bold_, c.width * TextWidth() - 4));
    if (drawing_) {
      cairo_set_source_rgb(cr_, 0.90, 0.92, 0.95);
      cairo_rectangle(cr_, kMargin, y_, TextWidth(), h + 3);
      cairo_fill(cr_);
    }
    double x = kMargin;
    for (const auto& c : repeat_header_) {
      Prepare(c.title, bold_, c.width * TextWidth() - 4, c.right);
      Show(x + 2, y_ + 1.5);
      x += c.width * TextWidth();
    }
    y_ += h + 4;
  }
  // One row; cells wrap when `wrap` (then the row grows), else they are cut with an ellipsis.
  void Row(const std::vector<std::string>& cells, bool wrap = false, bool shade = false) {
    double h = kRowHeight;
    if (wrap) {
      for (std::size_t i = 0; i < cells.size(); ++i) {
        h = std::max(h, Prepare(cells[i], regular_, repeat_header_[i].width * TextWidth() - 4) + 2.5);
      }
    }
    Ensure(h);
    if (drawing_) {
      if (shade) {
        cairo_set_source_rgb(cr_, 1.0, 0.90, 0.88);
        cairo_rectangle(cr_, kMargin, y_, TextWidth(), h);
        cairo_fill(cr_);
      }
      double x = kMargin;
      for (std::size_t i = 0; i < cells.size() && i < repeat_header_.size(); ++i) {
        const Column& c = repeat_header_[i];
        if (wrap) {
          Prepare(cells[i], regular_, c.width * TextWidth() - 4, c.right, wrap);
          Show(x + 2, y_ + 1);
        } else {
          ShowCell(cells[i], c, x + 2, y_ + 1);
        }
        x += c.width * TextWidth();
      }
      cairo_set_source_rgb(cr_, 0.85, 0.85, 0.85);
      cairo_set_line_width(cr_, 0.3);
      cairo_move_to(cr_, kMargin, y_ + h);
      cairo_line_to(cr_, kMargin + TextWidth(), y_ + h);
      cairo_stroke(cr_);
    }
    y_ += h;
  }

  // Table cells repeat a lot ("0:00", "5.0", "—"): a cell's shaped layout is kept per column
  // width and alignment, so that drawing it again skips pango's itemising and shaping.
  void ShowCell(const std::string& text, const Column& c, double x, double y) {
    std::string key = fmt::format("{}|{}|{}", c.width, c.right ? 1 : 0, text);
    auto it = cell_cache_.find(key);
    if (it == cell_cache_.end()) {
      if (cell_cache_.size() >= 4096) ClearCellCache();
      PangoLayout* l = pango_cairo_create_layout(cr_);
      pango_cairo_context_set_resolution(pango_layout_get_context(l), 72);
      pango_layout_context_changed(l);
      pango_layout_set_font_description(l, regular_);
      pango_layout_set_width(l, static_cast<int>((c.width * TextWidth() - 4) * PANGO_SCALE));
      pango_layout_set_ellipsize(l, PANGO_ELLIPSIZE_END);
      pango_layout_set_alignment(l, c.right ? PANGO_ALIGN_RIGHT : PANGO_ALIGN_LEFT);
      pango_layout_set_text(l, text.data(), static_cast<int>(text.size()));
      it = cell_cache_.emplace(std::move(key), l).first;
    }
    cairo_set_source_rgb(cr_, 0, 0, 0);
    cairo_move_to(cr_, x, y);
    pango_cairo_show_layout(cr_, it->second);
  }
  void ClearCellCache() {
    for (auto& [k, l] : cell_cache_) g_object_unref(l);
    cell_cache_.clear();
  }

  std::string Local(TimestampMs t, const char* format = "%Y-%m-%d %H:%M") const {
    return zone_.FormatLocal(t, format);
  }

  // ---- sections ---------------------------------------------------------------------------------
  void Cover() {
    Paragraph("Temperature compliance report", title_, 8);
    const ReportRequest& q = r_.request;
    Paragraph(fmt::format("Organisation: {}", r_.org.name), bold_);
    Paragraph(fmt::format("Site(s): {}", r_.site_names.empty() ? std::string("—") : fmt::format("{}", fmt::join(r_.site_names, ", "))),
              regular_);
    std::vector<std::string> names;
    for (const auto& d : r_.devices) names.push_back(d.device.name);
    Paragraph(fmt::format("Devices: {}", fmt::join(names, ", ")), regular_);
    Paragraph(fmt::format("Period: {} to {} ({}), {} days", Local(q.from), Local(q.to), r_.time_zone,
                          Num1(static_cast<double>(q.to - q.from) / kMsPerDay)),
              regular_);
    Paragraph(fmt::format("Generated: {} ({}) by {}", Local(r_.generated_at, "%Y-%m-%d %H:%M:%S"), r_.time_zone,
                          q.generated_by.empty() ? std::string("unknown") : q.generated_by),
              regular_);
    Paragraph(fmt::format("Software: OpenSense {}", q.software_version), regular_);
    Paragraph(fmt::format("Metric: {}. Figures come from the stored rollups (never from raw readings over long "
                          "periods); time out of range counts whole rollup buckets whose mean is outside the "
                          "target range.",
                          q.metric),
              small_);
    if (!r_.level_note.empty()) Paragraph("Data level: " + r_.level_note, bold_);
    if (!r_.alerts_available) {
      Paragraph("Alert history: not available in this installation; the excursions below are computed from the "
                "data only.",
                bold_);
    }
    Heading("Summary");
    Table({{"Device", 0.20}, {"Site", 0.13}, {"Target range", 0.16}, {"Compliant", 0.09},
           {"Out of range", 0.11, true}, {"Excursions", 0.09, true}, {"Alerts", 0.07, true},
           {"Gaps", 0.06, true}, {"Flagged days", 0.09, true}});
    for (const auto& d : r_.devices) {
      std::string compliant = !d.compliant ? "n/a" : *d.compliant ? "yes" : "NO";
      Row({d.device.name, d.site_name, RangeText(d.device.profile, UnitText(d.unit)), compliant,
           FormatDuration(d.above_ms + d.below_ms), std::to_string(d.excursions.size()),
           std::to_string(d.alerts.size()), std::to_string(d.gaps.size()), std::to_string(d.flagged_days)},
          false, d.compliant && !*d.compliant);
    }
    EndTable();
    Paragraph("Compliant: a target range is set and the device spent no time outside it and had no gap in its "
              "data during the period. Time is h:mm.",
              small_);
    Calibration();
  }

  void Calibration() {
    Heading("Calibration");
    Table({{"Device", 0.30}, {"Serial", 0.20}, {"Certificate date", 0.17}, {"Due date", 0.17}, {"Status", 0.16}});
    for (const auto& d : r_.devices) {
      const DeviceProfile& p = d.device.profile;
      std::string status = !p.calibration_due ? "not recorded" : d.calibration_overdue ? "OVERDUE" : "valid";
      Row({d.device.name, d.device.serial.value_or("—"), p.calibration_date.value_or("—"),
           p.calibration_due.value_or("—"), status},
          false, d.calibration_overdue);
    }
    EndTable();
  }

  void DevicePages(const DeviceReport& d) {
    NewPage();
    const std::string unit = UnitText(d.unit);
    const DeviceProfile& p = d.device.profile;
    Paragraph(fmt::format("Device: {}", d.device.name), title_, 4);
    Paragraph(fmt::format("Id {} · serial {} · site {}{}", d.device.id, d.device.serial.value_or("—"),
                          d.site_name.empty() ? "—" : d.site_name, d.device.decommissioned ? " · decommissioned" : ""),
              regular_);
    Paragraph(fmt::format("Target range: {} · expected reading interval: {} · medicine storage: {}",
                          RangeText(p, unit),
                          p.expected_interval_s ? fmt::format("{} s", *p.expected_interval_s) : "not set",
                          p.medicine_storage ? "yes" : "no"),
              regular_);
    if (d.has_data) {
      std::string stats = fmt::format("Period: min {} {}, max {} {}, mean {} {}; readings received {}{}; time above "
                                      "range {}, below range {}; data from {}.",
                                      Num1(d.min), unit, Num1(d.max), unit, Num1(d.mean), unit, d.received,
                                      d.expected ? fmt::format(" of {} expected", *d.expected) : "",
                                      FormatDuration(d.above_ms), FormatDuration(d.below_ms), LevelName(d.level));
      Paragraph(stats, regular_);
    } else {
      Paragraph("No stored data for this device in the period.", bold_);
    }
    if (p.medicine_storage) {
      Paragraph(d.mkt ? fmt::format("Mean kinetic temperature: {:.2f} {} (activation energy {} kJ/mol, from {} means)",
                                    *d.mkt, unit, r_.request.activation_energy_kj_mol, LevelName(d.level))
                      : "Mean kinetic temperature: no data",
                bold_);
    }
    Chart(d);
    Heading("Daily summary (" + r_.time_zone + ")");
    Table({{"Date", 0.19}, {"Min", 0.08, true}, {"Max", 0.08, true}, {"Mean", 0.08, true},
           {"Received / expected", 0.17, true}, {"Above (h:mm)", 0.11, true}, {"Below (h:mm)", 0.11, true},
           {"Flags", 0.18}});
    for (const DailyRow& row : d.days) {
      std::string hours = row.end - row.start != kMsPerDay ? fmt::format(" ({} h)", (row.end - row.start) / kMsPerHour) : "";
      Row({row.date + hours, row.has_data ? Num1(row.min) : "—", row.has_data ? Num1(row.max) : "—",
           row.has_data ? Num1(row.mean) : "—",
           row.expected ? fmt::format("{} / {}", row.received, *row.expected) : std::to_string(row.received),
           FormatDuration(row.above_ms), FormatDuration(row.below_ms), fmt::format("{}", fmt::join(row.flags, ", "))},
          false, !row.flags.empty());
    }
    EndTable();

    Heading("Excursions found in the data");
    if (d.excursions.empty()) {
      Paragraph(p.target_min || p.target_max ? "None: no bucket mean outside the target range."
                                             : "Not assessed: no target range is set for this device.",
                regular_);
    } else {
      Table({{"Start", 0.22}, {"End", 0.22}, {"Duration (h:mm)", 0.16, true}, {"Direction", 0.18},
             {"Peak", 0.22, true}});
      for (const Excursion& e : d.excursions) {
        Row({Local(e.start), Local(e.end), FormatDuration(e.end - e.start), e.above ? "above range" : "below range",
             fmt::format("{} {}", Num1(e.peak), unit)});
      }
      EndTable();
    }

    Heading("Alerts");
    if (!r_.alerts_available) {
      Paragraph("The alert history is not available in this installation.", regular_);
    } else if (d.alerts.empty()) {
      Paragraph("No alerts in the period.", regular_);
    } else {
      Table({{"Alert", 0.13}, {"Start", 0.12}, {"End", 0.12}, {"Duration", 0.07, true}, {"Peak", 0.07, true},
             {"Acknowledged by", 0.15}, {"At", 0.12}, {"Corrective action", 0.22}});
      for (const AlertRecord& a : d.alerts) {
        Row({a.title + (a.late ? " (from late readings)" : ""), Local(a.start), a.end ? Local(*a.end) : "open",
             a.end ? FormatDuration(*a.end - a.start) : "—", a.peak ? Num1(*a.peak) : "—",
             a.acknowledged_by.value_or("not acknowledged"),
             a.acknowledged_at ? Local(*a.acknowledged_at) : "—",
             a.corrective_action.empty() ? "—" : a.corrective_action},
            true, !a.acknowledged_by);
      }
      EndTable();
    }

    Heading("Gaps in the data (offline periods)");
    if (d.gaps.empty()) {
      Paragraph("None.", regular_);
    } else {
      Table({{"From", 0.28}, {"To", 0.28}, {"Duration (h:mm)", 0.2, true}, {"", 0.24}});
      for (const Gap& g : d.gaps) {
        Row({Local(g.start), Local(g.end), FormatDuration(g.end - g.start), "no data (offline)"}, false, true);
      }
      EndTable();
      Paragraph(fmt::format("A gap is a silence of at least {} (one {} bucket, or two expected intervals).",
                            FormatDuration(std::max(d.bucket_ms, 2 * p.expected_interval_s.value_or(0) * kMsPerSecond)),
                            LevelName(d.level)),
                small_);
    }
  }

  void Chart(const DeviceReport& d) {
    const double h = 190, x0 = kMargin + 34, w = TextWidth() - 34;
    Ensure(h + 36);
    const double y0 = y_ + 4;
    const DeviceProfile& p = d.device.profile;
    double lo = 1e300, hi = -1e300;
    for (const ChartBin& b : d.chart) {
      if (!b.has_data) continue;
      lo = std::min(lo, b.min);
      hi = std::max(hi, b.max);
    }
    for (auto v : {p.target_min, p.target_max}) {
      if (v) {
        lo = std::min(lo, *v);
        hi = std::max(hi, *v);
      }
    }
    if (lo > hi) lo = 0, hi = 10;
    double step = 0.5;
    for (double s : {0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0}) {
      step = s;
      if ((hi - lo) / s <= 8) break;
    }
    lo = std::floor(lo / step) * step - step;
    hi = std::ceil(hi / step) * step + step;
    const TimestampMs from = r_.request.from, to = r_.request.to;
    auto X = [&](TimestampMs t) { return x0 + w * static_cast<double>(t - from) / static_cast<double>(to - from); };
    auto Y = [&](double v) { return y0 + h - h * (v - lo) / (hi - lo); };
    if (drawing_) {
      cairo_save(cr_);
      cairo_rectangle(cr_, x0, y0, w, h);
      cairo_clip(cr_);
      // Excursions (red) and gaps (grey) behind the data.
      cairo_set_source_rgba(cr_, 0.85, 0.1, 0.1, 0.22);
      for (const Excursion& e : d.excursions) {
        cairo_rectangle(cr_, X(e.start), y0, std::max(0.6, X(e.end) - X(e.start)), h);
      }
      cairo_fill(cr_);
      cairo_set_source_rgba(cr_, 0.4, 0.4, 0.4, 0.25);
      for (const Gap& g : d.gaps) cairo_rectangle(cr_, X(g.start), y0, std::max(0.6, X(g.end) - X(g.start)), h);
      cairo_fill(cr_);
      // Min/max band and mean line, broken where a bin has no data.
      cairo_set_source_rgba(cr_, 0.25, 0.45, 0.85, 0.35);
      for (std::size_t i = 0; i < d.chart.size();) {
        if (!d.chart[i].has_data) {
          ++i;
          continue;
        }
        std::size_t j = i;
        while (j < d.chart.size() && d.chart[j].has_data) ++j;
        cairo_move_to(cr_, X(d.chart[i].start), Y(d.chart[i].max));
        for (std::size_t k = i; k < j; ++k) {
          cairo_line_to(cr_, X(d.chart[k].start), Y(d.chart[k].max));
          cairo_line_to(cr_, X(d.chart[k].end), Y(d.chart[k].max));
        }
        for (std::size_t k = j; k-- > i;) {
          cairo_line_to(cr_, X(d.chart[k].end), Y(d.chart[k].min));
          cairo_line_to(cr_, X(d.chart[k].start), Y(d.chart[k].min));
        }
        cairo_close_path(cr_);
        cairo_fill(cr_);
        i = j;
      }
      cairo_set_source_rgb(cr_, 0.1, 0.25, 0.6);
      cairo_set_line_width(cr_, 0.7);
      bool pen = false;
      for (const ChartBin& b : d.chart) {
        if (!b.has_data) {
          pen = false;
          continue;
        }
        double x = (X(b.start) + X(b.end)) / 2;
        if (pen) cairo_line_to(cr_, x, Y(b.mean));
        else cairo_move_to(cr_, x, Y(b.mean));
        pen = true;
      }
      cairo_stroke(cr_);
      // Target range.
      cairo_set_source_rgb(cr_, 0.8, 0.0, 0.0);
      cairo_set_line_width(cr_, 0.8);
      const double dash[] = {4, 2};
      cairo_set_dash(cr_, dash, 2, 0);
      for (auto v : {p.target_min, p.target_max}) {
        if (!v) continue;
        cairo_move_to(cr_, x0, Y(*v));
        cairo_line_to(cr_, x0 + w, Y(*v));
      }
      cairo_stroke(cr_);
      cairo_set_dash(cr_, nullptr, 0, 0);
      cairo_restore(cr_);
      // Frame and grid.
      cairo_set_source_rgb(cr_, 0.5, 0.5, 0.5);
      cairo_set_line_width(cr_, 0.5);
      cairo_rectangle(cr_, x0, y0, w, h);
      cairo_stroke(cr_);
      cairo_set_source_rgb(cr_, 0.88, 0.88, 0.88);
      cairo_set_line_width(cr_, 0.3);
      for (double v = lo + step; v < hi; v += step) {
        cairo_move_to(cr_, x0, Y(v));
        cairo_line_to(cr_, x0 + w, Y(v));
      }
      cairo_stroke(cr_);
      for (double v = lo + step; v < hi; v += step) {
        Prepare(Num1(v), small_, 30, true, false);
        Show(kMargin, Y(v) - 5);
      }
      // Local-midnight ticks, at most about eight labels.
      const TimestampMs days = std::max<TimestampMs>(1, (to - from) / kMsPerDay);
      const TimestampMs every = std::max<TimestampMs>(1, (days + 7) / 8);
      TimestampMs n = 0;
      for (Interval day = zone_.DayOf(from); day.start < to; day = zone_.DayOf(day.end), ++n) {
        if (day.start < from || n % every != 0) continue;
        cairo_set_source_rgb(cr_, 0.5, 0.5, 0.5);
        cairo_move_to(cr_, X(day.start), y0 + h);
        cairo_line_to(cr_, X(day.start), y0 + h + 3);
        cairo_stroke(cr_);
        Prepare(Local(day.start, "%d %b"), small_, 60, false, false);
        Show(X(day.start) - 10, y0 + h + 4);
      }
    }
    y_ = y0 + h + 16;
    Paragraph(fmt::format("{} per column: band min to max, line mean; dashed red: target range; shaded red: excursion; "
                          "shaded grey: no data.",
                          LevelName(d.level)),
              small_);
  }

  void Closing() {
    Heading("Sign-off");
    Paragraph("I have reviewed this report, the excursions and the corrective actions listed in it.", regular_, 14);
    Ensure(80);
    for (const char* label : {"Name", "Role", "Date", "Signature"}) {
      Prepare(label, regular_, 80);
      Show(kMargin, y_);
      if (drawing_) {
        cairo_set_source_rgb(cr_, 0, 0, 0);
        cairo_set_line_width(cr_, 0.5);
        cairo_move_to(cr_, kMargin + 70, y_ + 11);
        cairo_line_to(cr_, kMargin + 330, y_ + 11);
        cairo_stroke(cr_);
      }
      y_ += 22;
    }
    y_ += 6;
    Paragraph(fmt::format("The SHA-256 in the footer is computed over the stored rollup rows, device settings and "
                          "alert events this report used. Rendering the same period again from unchanged data gives "
                          "the same digest: {}",
                          r_.digest),
              small_);
  }

  const ReportData& r_;
  TimeZone zone_;
  int total_;
  bool drawing_;
  double width_ = 0, height_ = 0, y_ = 0;
  int page_ = 1;
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
  PangoLayout* layout_ = nullptr;
  PangoFontDescription *regular_, *bold_, *small_, *mono_, *title_, *heading_;
  std::vector<Column> repeat_header_;
  std::unordered_map<std::string, PangoLayout*> cell_cache_;
};

}  // namespace

Result<std::string> RenderPdf(const ReportData& report) {
  if (!TimeZone::Load(report.time_zone)) {
    return MakeError(ErrorCode::kInternal, "report without a valid time zone");
  }
  int pages = 0;
  {
    Writer counter(report, 0, nullptr);
    OS_ASSIGN_OR_RETURN(pages, counter.Run());
  }
  std::string out;
  Writer writer(report, pages, &out);
  OS_ASSIGN_OR_RETURN(int drawn, writer.Run());
  if (drawn != pages) {
    return MakeError(ErrorCode::kInternal, fmt::format("page count changed between passes ({} vs {})", pages, drawn));
  }
  return out;
}

void WriteDailyCsv(const ReportData& report, const std::function<bool(std::string_view)>& sink) {
  std::string chunk =
      "device_id,device,date,day_hours,min,max,mean,readings_received,readings_expected,minutes_above,"
      "minutes_below,flags,level,unit\n";
  auto quote = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
      if (c == '"') q += "\"\"";
      else q += c;
    }
    return q + "\"";
  };
  for (const DeviceReport& d : report.devices) {
    for (const DailyRow& row : d.days) {
      fmt::format_to(std::back_inserter(chunk), "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", d.device.id,
                     quote(d.device.name), row.date, (row.end - row.start) / kMsPerHour,
                     row.has_data ? Num1(row.min) : "", row.has_data ? Num1(row.max) : "",
                     row.has_data ? fmt::format("{:.2f}", row.mean) : "", row.received,
                     row.expected ? std::to_string(*row.expected) : "", row.above_ms / kMsPerMinute,
                     row.below_ms / kMsPerMinute, quote(fmt::format("{}", fmt::join(row.flags, ";"))),
                     ResolutionName(d.level), d.unit);
      if (chunk.size() > 32 * 1024) {
        if (!sink(chunk)) return;
        chunk.clear();
      }
    }
  }
  if (!chunk.empty()) sink(chunk);
}

}  // namespace opensense::reports
