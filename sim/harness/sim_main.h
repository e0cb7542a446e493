// Run protocol shared by the compiled simulators (Verilator and CXXRTL mains).
//
// The Python backend (sim/backends/compiled.py) calls the binary as
//   sim --memory IMG --commands CMDS --out OUT --word-bits N --counters K
//       --max-cycles C [--readback FIRST:COUNT,...] [--skip-zero] [--progress]
//       [--trace FILE --trace-start A --trace-end B]
// and reads one JSON object from stdout. The steps mirror sim/backends/pysim.py:
// load commands and memory through the ports, reset (registered: one more edge), pulse
// start (cycle 0), clock
// until done or C more cycles, read counters, read memory back through the host port.
// A model adapter provides tick(), settle(), the port setters/getters and tracing, and
// direct_memory with poke() / peek() when it can reach the main memory array itself.
#pragma once

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace simh {

struct Options {
  std::string memory, commands, out, trace;
  uint64_t max_cycles = 0, trace_start = 0, trace_end = 0, count = 0;
  unsigned word_bits = 0, counters = 0;
  bool skip_zero = false, progress = false;
  std::vector<std::pair<uint64_t, uint64_t>> readback;
};

inline std::vector<std::pair<uint64_t, uint64_t>> parse_ranges(const std::string &text) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    size_t colon = item.find(':');
    if (colon == std::string::npos) throw std::runtime_error("bad --readback item: " + item);
    ranges.emplace_back(std::stoull(item.substr(0, colon)), std::stoull(item.substr(colon + 1)));
    pos = comma + 1;
  }
  return ranges;
}

inline Options parse_args(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--skip-zero") { o.skip_zero = true; continue; }
    if (flag == "--progress") { o.progress = true; continue; }
    if (i + 1 >= argc) throw std::runtime_error("missing value after " + flag);
    std::string value = argv[++i];
    if (flag == "--memory") o.memory = value;
    else if (flag == "--commands") o.commands = value;
    else if (flag == "--out") o.out = value;
    else if (flag == "--trace") o.trace = value;
    else if (flag == "--max-cycles") o.max_cycles = std::stoull(value);
    else if (flag == "--count") o.count = std::stoull(value);  // run length (>= commands)
    else if (flag == "--trace-start") o.trace_start = std::stoull(value);
    else if (flag == "--trace-end") o.trace_end = std::stoull(value);
    else if (flag == "--word-bits") o.word_bits = unsigned(std::stoul(value));
    else if (flag == "--counters") o.counters = unsigned(std::stoul(value));
    else if (flag == "--readback") o.readback = parse_ranges(value);
    else throw std::runtime_error("unknown option " + flag);
  }
  if (o.word_bits == 0 || o.word_bits % 8)
    throw std::runtime_error("--word-bits must be a multiple of 8");
  return o;
}

inline std::vector<uint8_t> read_file(const std::string &path) {
  std::vector<uint8_t> data;
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  uint8_t buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    data.insert(data.end(), buffer, buffer + n);
  std::fclose(f);
  return data;
}

// Little-endian bytes -> 32-bit chunks (the unit of Verilator's VlWide and CXXRTL's value).
inline void bytes_to_chunks(const uint8_t *bytes, size_t count, uint32_t *chunks, size_t n_chunks) {
  for (size_t i = 0; i < n_chunks; ++i) chunks[i] = 0;
  for (size_t i = 0; i < count; ++i) chunks[i / 4] |= uint32_t(bytes[i]) << (8 * (i % 4));
}

inline void chunks_to_bytes(const uint32_t *chunks, uint8_t *bytes, size_t count) {
  for (size_t i = 0; i < count; ++i) bytes[i] = uint8_t(chunks[i / 4] >> (8 * (i % 4)));
}

template <class Model> void load_commands(Model &m, const std::vector<uint8_t> &commands) {
  uint32_t chunks[4];
  m.cmd_we(true);
  for (size_t i = 0; i < commands.size() / 16; ++i) {
    bytes_to_chunks(&commands[16 * i], 16, chunks, 4);
    m.cmd_addr(uint32_t(i));
    m.cmd_wdata(chunks);
    m.tick();
  }
  m.cmd_we(false);
}

template <class Model>
void load_memory(Model &m, const Options &o, const std::vector<uint8_t> &image) {
  const size_t width = o.word_bits / 8, n_chunks = (width + 3) / 4;
  std::vector<uint32_t> chunks(n_chunks);
  m.host_we(true);
  for (size_t i = 0; i < image.size() / width; ++i) {
    const uint8_t *word = &image[i * width];
    // A zero word need not be written when the memory resets to zero.
    if (o.skip_zero && std::all_of(word, word + width, [](uint8_t b) { return b == 0; })) continue;
    bytes_to_chunks(word, width, chunks.data(), n_chunks);
    if constexpr (Model::direct_memory) {
      m.poke(uint32_t(i), chunks.data());
      continue;
    }
    m.host_addr(uint32_t(i));
    m.host_wdata(chunks.data());
    m.tick();
  }
  m.host_we(false);
  m.host_addr(0);
}

// Clock until done; returns the cycles after the start edge.
template <class Model> uint64_t execute(Model &m, const Options &o, uint32_t n_commands) {
  m.rst(true);
  m.tick();
  m.rst(false);
  m.tick();  // the top sees the registered reset at this edge (sim.harness_top.RegisteredReset)
  m.cmd_count(n_commands);
  m.start(true);
  m.restart_time();  // waveform time 10 * cycle, counted from the start edge
  m.set_tracing(!o.trace.empty() && o.trace_start == 0 && o.trace_end > 0);
  m.tick();
  m.start(false);
  uint64_t cycles = 0;
  auto last = std::chrono::steady_clock::now();
  while (!m.done() && cycles < o.max_cycles) {
    m.set_tracing(!o.trace.empty() && cycles + 1 >= o.trace_start && cycles + 1 < o.trace_end);
    m.tick();
    ++cycles;
    if (o.progress && (cycles & 0xffff) == 0) {
      auto now = std::chrono::steady_clock::now();
      if (now - last > std::chrono::seconds(1)) {
        std::fprintf(stderr, "progress %" PRIu64 "\n", cycles);
        std::fflush(stderr);
        last = now;
      }
    }
  }
  m.set_tracing(false);
  return cycles;
}

template <class Model> std::vector<uint64_t> read_counters(Model &m, unsigned count) {
  std::vector<uint64_t> values;
  for (unsigned i = 0; i < count; ++i) {
    m.counter_sel(i);
    m.settle();
    values.push_back(m.counter_value());
  }
  return values;
}

// Registered read port: the word of the address presented before an edge is valid after it.
template <class Model> void read_memory(Model &m, const Options &o, FILE *out) {
  const size_t width = o.word_bits / 8, n_chunks = (width + 3) / 4;
  std::vector<uint32_t> chunks(n_chunks);
  std::vector<uint8_t> bytes(width);
  for (auto &range : o.readback) {
    for (uint64_t i = range.first; i < range.first + range.second; ++i) {
      if constexpr (Model::direct_memory) {
        m.peek(uint32_t(i), chunks.data());
      } else {
        m.host_addr(uint32_t(i));
        m.tick();
        m.host_rdata(chunks.data());
      }
      chunks_to_bytes(chunks.data(), bytes.data(), width);
      std::fwrite(bytes.data(), 1, width, out);
    }
  }
}

template <class Model> int run(Model &m, int argc, char **argv) {
  try {
    Options o = parse_args(argc, argv);
    auto commands = read_file(o.commands);
    auto image = read_file(o.memory);
    if (!o.trace.empty()) m.open_trace(o.trace);
    load_commands(m, commands);
    load_memory(m, o, image);
    auto t0 = std::chrono::steady_clock::now();
    std::clock_t c0 = std::clock();
    uint64_t cycles = execute(m, o, uint32_t(std::max<uint64_t>(o.count, commands.size() / 16)));
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu_seconds = double(std::clock() - c0) / CLOCKS_PER_SEC;
    bool done = m.done(), error = m.error();
    unsigned code = m.error_code();
    auto counters = read_counters(m, o.counters);
    FILE *out = std::fopen(o.out.c_str(), "wb");
    if (!out) throw std::runtime_error("cannot write " + o.out);
    read_memory(m, o, out);
    std::fclose(out);
    m.close_trace();
    std::printf("{\"cycles\": %" PRIu64 ", \"done\": %d, \"error\": %d, \"error_code\": %u, "
                "\"seconds\": %.6f, \"cpu_seconds\": %.6f, \"counters\": [", cycles, int(done),
                int(error), code, seconds, cpu_seconds);
    for (size_t i = 0; i < counters.size(); ++i)
      std::printf("%s%" PRIu64, i ? ", " : "", counters[i]);
    std::printf("]}\n");
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}

}  // namespace simh
