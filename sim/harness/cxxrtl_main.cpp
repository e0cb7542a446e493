// CXXRTL adapter for the shared run protocol in sim_main.h.
// Built by sim/backends/cxxrtl.py: top.cc is the output of Yosys' write_cxxrtl;
// SIMH_TRACE=1 adds VCD output through CXXRTL's debug information.
#include "top.cc"
#if SIMH_TRACE
#include <cxxrtl/cxxrtl_vcd.h>
#include <fstream>
#endif

#include "sim_main.h"

namespace {

static_assert(sizeof(cxxrtl::chunk_t) == 4, "the harness moves data in 32-bit chunks");

// Ports are plain values (inputs, combinational outputs) or wires (registered outputs).
template <size_t B> void put(cxxrtl::value<B> &v, const uint32_t *c) {
  for (size_t i = 0; i < cxxrtl::value<B>::chunks; ++i) v.data[i] = c[i];
}
template <size_t B> void put(cxxrtl::wire<B> &w, const uint32_t *c) { put(w.next, c); }
template <size_t B> void get(const cxxrtl::value<B> &v, uint32_t *c) {
  for (size_t i = 0; i < cxxrtl::value<B>::chunks; ++i) c[i] = v.data[i];
}
template <size_t B> void get(const cxxrtl::wire<B> &w, uint32_t *c) { get(w.curr, c); }
template <class T> void put64(T &port, uint64_t v) {
  uint32_t c[2] = {uint32_t(v), uint32_t(v >> 32)};
  put(port, c);
}
template <class T> uint64_t get64(const T &port) {
  uint32_t c[2] = {0, 0};
  get(port, c);
  return uint64_t(c[0]) | uint64_t(c[1]) << 32;
}

class Model {
 public:
  Model() {
    put64(top_.p_clk, 0);
    put64(top_.p_rst, 0);
    top_.step();
  }

  // The falling-edge step() is needed even though every flip-flop is rising-edge:
  // CXXRTL settles combinational outputs of registers (e.g. a `done` decoded from
  // state) only in the next evaluation. Skipping it ran 1.8x faster but saw `done`
  // one cycle late on the accelerator top.
  void tick() {
    put64(top_.p_clk, 1);
    top_.step();
    dump();
    put64(top_.p_clk, 0);
    top_.step();
    dump();
  }
  void restart_time() { time_ = 0; }
  void settle() { top_.step(); }

  void rst(bool v) { put64(top_.p_rst, v); }
  void start(bool v) { put64(top_.p_start, v); }
  void cmd_count(uint32_t v) { put64(top_.p_cmd__count, v); }
  void cmd_we(bool v) { put64(top_.p_cmd__we, v); }
  void cmd_addr(uint32_t v) { put64(top_.p_cmd__addr, v); }
  void cmd_wdata(const uint32_t *c) { put(top_.p_cmd__wdata, c); }
  void host_we(bool v) { put64(top_.p_host__we, v); }
  void host_addr(uint32_t v) { put64(top_.p_host__addr, v); }
  void host_wdata(const uint32_t *c) { put(top_.p_host__wdata, c); }
  void host_rdata(uint32_t *c) { get(top_.p_host__rdata, c); }
  void counter_sel(uint32_t v) { put64(top_.p_counter__sel, v); }
  uint64_t counter_value() { return get64(top_.p_counter__value); }
  static constexpr bool direct_memory = false;  // main memory through the host port
  void poke(uint32_t, const uint32_t *) {}
  void peek(uint32_t, uint32_t *) {}
  bool done() { return get64(top_.p_done); }
  bool error() { return get64(top_.p_error); }
  unsigned error_code() { return unsigned(get64(top_.p_error__code)); }

#if SIMH_TRACE
  void open_trace(const std::string &path) {
    file_.open(path);
    if (!file_) throw std::runtime_error("cannot write " + path);
    top_.debug_info(&items_, nullptr, "top ");
    vcd_.timescale(1, "ns");
    vcd_.add_without_memories(items_);
  }
  void close_trace() { if (file_.is_open()) file_.close(); }
  void set_tracing(bool on) { tracing_ = on && file_.is_open(); }
#else
  void open_trace(const std::string &) {
    throw std::runtime_error("this model was built without tracing");
  }
  void close_trace() {}
  void set_tracing(bool) {}
#endif

 private:
  void dump() {
#if SIMH_TRACE
    if (tracing_) {
      vcd_.sample(time_);
      file_ << vcd_.buffer;
      vcd_.buffer.clear();
    }
#endif
    time_ += 5;
  }

  cxxrtl_design::p_top top_;
  uint64_t time_ = 0;
#if SIMH_TRACE
  cxxrtl::debug_items items_;
  cxxrtl::vcd_writer vcd_;
  std::ofstream file_;
  bool tracing_ = false;
#endif
};

}  // namespace

int main(int argc, char **argv) {
  Model model;
  return simh::run(model, argc, argv);
}
