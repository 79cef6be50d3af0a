#pragma once
// What a training run shows and draws: a progress bar on stderr, number formatting, and the
// training curve of a metrics.csv (trm::fit) drawn with gnuplot.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "trm/io/atomic_file.hpp"

#include <unistd.h>

namespace trm {

inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

inline std::string percent(double x, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, 100.0 * x);
  return buf;
}

// The progress bar --------------------------------------------------------------------------------------
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2)) {}
  // fraction in [0, 1] (or < 0 when unknown)
  void update(const std::string& text, double fraction, bool force = false) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.25 : 30.0)) return;
    last_ = now;
    std::string bar;
    if (fraction >= 0) {
      const int width = 24, full = int(std::clamp(fraction, 0.0, 1.0) * width);
      bar = "[" + std::string(std::size_t(full), '#') + std::string(std::size_t(width - full), '.') + "] ";
    }
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s%s", bar.c_str(), text.c_str());
      open_ = true;
    } else {
      std::fprintf(stderr, "%s%s\n", bar.c_str(), text.c_str());
    }
    std::fflush(stderr);
  }
  // A line of its own (the bar is redrawn at the next update).
  void line(const std::string& text) {
    if (open_) std::fprintf(stderr, "\r\033[K");
    open_ = false;
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
    last_ = {};
  }
  void finish() {
    if (open_) std::fprintf(stderr, "\n");
    open_ = false;
  }

 private:
  bool quiet_, tty_;
  bool open_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// The training curve: writes a gnuplot script next to `png` and runs gnuplot on it. Returns false
// (after saying why on stderr) when gnuplot is missing or fails; the PNG is written under a
// temporary name and renamed.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline bool plot_training_curve(const std::filesystem::path& metrics_csv, const std::filesystem::path& png,
                                const std::string& title) {
  namespace fs = std::filesystem;
  // Column 21 (eval_valid) is drawn only when some eval row has it (gnuplot fails on a column
  // without a single point).
  bool has_valid = false;
  {
    std::ifstream in(metrics_csv);
    std::string line;
    while (!has_valid && std::getline(in, line)) {
      if (line.rfind("eval,", 0) != 0) continue;
      std::size_t pos = 0;
      for (int k = 0; k < 20 && pos != std::string::npos; ++k) pos = line.find(',', pos == 0 ? 0 : pos + 1);
      has_valid = pos != std::string::npos && pos + 1 < line.size() && line[pos + 1] != ',';
    }
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr,
                 "trm: gnuplot not found, skipping the training-curve PNG (Debian: apt-get install gnuplot-nox; the "
                 "metrics are in %s)\n",
                 metrics_csv.string().c_str());
    return false;
  }
  const fs::path script = png.parent_path() / "curve.gp";
  const fs::path tmp = png.parent_path() / ("." + png.filename().string() + ".tmp-" + std::to_string(::getpid()));
  auto gp_string = [](const std::string& s) {  // a gnuplot single-quoted string
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
  std::string gp;
  gp += "# Training curve of a trm::fit run (generated; run: gnuplot curve.gp)\n";
  gp += "set terminal pngcairo size 900,640 font 'sans,10'\n";
  gp += "set output " + gp_string(tmp.string()) + "\n";
  gp += "set datafile separator ','\n";
  gp += "set datafile missing ''\n";
  // Train and eval rows come from the same CSV; grep splits them so that each line is continuous.
  const std::string csv = metrics_csv.string();
  auto gp_dq_string = [](const std::string& s) {  // a gnuplot double-quoted string (backslash escapes)
    std::string q = "\"";
    for (char c : s) {
      if (c == '\\' || c == '"') q += '\\';
      q += c;
    }
    return q + "\"";
  };
  gp += "tr = " + gp_dq_string("< grep ^train, " + shell_quote(csv)) + "\n";
  gp += "ev = " + gp_dq_string("< grep ^eval, " + shell_quote(csv)) + "\n";
  std::string t = title;
  for (std::size_t p = t.find("N_sup"); p != std::string::npos; p = t.find("N_sup", p + 1)) t.replace(p, 5, "N_{sup}");
  gp += "set multiplot layout 2,1 title " + gp_string(t) + "\n";
  gp += "set key bottom right\nset grid\nset ylabel 'accuracy (%)'\nset yrange [0:100]\n";
  gp += "set xlabel 'training time (minutes)'\n";
  gp += "plot ev using ($3/60):(100*$13) with linespoints lw 2 pt 7 title 'held-out exact (all N_{sup} steps)', \\\n";
  if (has_valid)
    gp += "     ev using ($3/60):(100*$21) with linespoints lw 2 pt 9 title 'held-out valid answers (all steps)', \\\n";
  gp += "     ev using ($3/60):(100*$15) with linespoints lw 2 pt 5 title 'held-out exact (early exit)', \\\n";
  gp += "     tr using ($3/60):(100*$9) with lines lc rgb '#999999' title 'train exact (finished rows)', \\\n";
  gp += "     tr using ($3/60):(100*$8) with lines lc rgb '#cccccc' title 'train cell accuracy'\n";
  gp += "set yrange [*:*]\nset logscale y\nset format y '%g'\nset ylabel 'train loss'\nset key top right\n";
  gp += "set xlabel 'step'\n";
  gp += "plot tr using 2:5 with lines lw 1.5 title 'total loss', \\\n";
  gp += "     tr using 2:7 with lines lw 1 title 'q-halt loss'\n";
  gp += "unset multiplot\nset output\n";
  try {
    io::write_file_atomically(script, [&](io::AtomicFileWriter& w) { w.write(gp); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trm: cannot write %s: %s; skipping the plot\n", script.string().c_str(), e.what());
    return false;
  }
  const std::string cmd = "gnuplot " + shell_quote(script.string()) + " 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(tmp)) {
    std::fprintf(stderr, "trm: gnuplot failed on %s; skipping the plot\n", script.string().c_str());
    std::error_code ec;
    fs::remove(tmp, ec);
    return false;
  }
  std::error_code ec;
  fs::rename(tmp, png, ec);
  if (ec) {
    std::fprintf(stderr, "trm: cannot rename the plot to %s: %s\n", png.string().c_str(), ec.message().c_str());
    fs::remove(tmp, ec);
    return false;
  }
  return true;
}

}  // namespace trm
