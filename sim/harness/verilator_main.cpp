// Verilator adapter for the shared run protocol in sim_main.h.
// Built by sim/backends/verilator.py together with the Verilated model Vtop;
// SIMH_TRACE (1 = VCD, 2 = FST) is defined when the model was built with tracing.
#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"
// SIMH_MEMORY: the root member that holds the main memory, when the build found it
// (sim/backends/verilator.py); the host port is then bypassed for loads and read-back.
#include "simh_memory.h"
#if SIMH_TRACE == 1
#include "verilated_vcd_c.h"
using TraceFile = VerilatedVcdC;
#elif SIMH_TRACE == 2
#include "verilated_fst_c.h"
using TraceFile = VerilatedFstC;
#endif

#include "sim_main.h"

namespace {

// Verilator stores ports up to 64 bits as plain integers and wider ones as VlWide.
template <class T> void put(T &port, const uint32_t *c) {
  uint64_t v = c[0];
  if (sizeof(T) > 4) v |= uint64_t(c[1]) << 32;
  port = T(v);
}
template <std::size_t N> void put(VlWide<N> &port, const uint32_t *c) {
  for (std::size_t i = 0; i < N; ++i) port[i] = c[i];
}
template <class T> void get(const T &port, uint32_t *c) {
  uint64_t v = port;
  c[0] = uint32_t(v);
  if (sizeof(T) > 4) c[1] = uint32_t(v >> 32);
}
template <std::size_t N> void get(const VlWide<N> &port, uint32_t *c) {
  for (std::size_t i = 0; i < N; ++i) c[i] = port[i];
}

class Model {
 public:
  Model() : context_(new VerilatedContext), top_(new Vtop{context_.get(), "top"}) {
    top_->clk = 0;
    top_->rst = 0;
    top_->eval();
  }
  ~Model() { top_->final(); }

  void tick() {
    top_->clk = 1;
    top_->eval();
    dump();
    top_->clk = 0;
    top_->eval();
    dump();
  }
  void restart_time() { time_ = 0; }
  void settle() { top_->eval(); }

  void rst(bool v) { top_->rst = v; }
  void start(bool v) { top_->start = v; }
  void cmd_count(uint32_t v) { top_->cmd_count = v; }
  void cmd_we(bool v) { top_->cmd_we = v; }
  void cmd_addr(uint32_t v) { top_->cmd_addr = v; }
  void cmd_wdata(const uint32_t *c) { put(top_->cmd_wdata, c); }
  void host_we(bool v) { top_->host_we = v; }
  void host_addr(uint32_t v) { top_->host_addr = v; }
  void host_wdata(const uint32_t *c) { put(top_->host_wdata, c); }
  void host_rdata(uint32_t *c) { get(top_->host_rdata, c); }
  void counter_sel(uint32_t v) { top_->counter_sel = v; }
  uint64_t counter_value() { return top_->counter_value; }
#ifdef SIMH_MEMORY
  // Main memory through the model's own array: one write per word instead of one clock
  // cycle of the whole model per word (what a write through the host port costs).
  static constexpr bool direct_memory = true;
  void poke(uint32_t addr, const uint32_t *c) { put(top_->rootp->SIMH_MEMORY[addr], c); }
  void peek(uint32_t addr, uint32_t *c) { get(top_->rootp->SIMH_MEMORY[addr], c); }
#else
  static constexpr bool direct_memory = false;
  void poke(uint32_t, const uint32_t *) {}
  void peek(uint32_t, uint32_t *) {}
#endif
  bool done() { return top_->done; }
  bool error() { return top_->error; }
  unsigned error_code() { return top_->error_code; }

#if SIMH_TRACE
  void open_trace(const std::string &path) {
    context_->traceEverOn(true);
    trace_.reset(new TraceFile);
    top_->trace(trace_.get(), 99);
    trace_->open(path.c_str());
  }
  void close_trace() { if (trace_) trace_->close(); }
  void set_tracing(bool on) { tracing_ = on && trace_; }
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
    if (tracing_) trace_->dump(time_);
#endif
    time_ += 5;
  }

  std::unique_ptr<VerilatedContext> context_;
  std::unique_ptr<Vtop> top_;
  uint64_t time_ = 0;
#if SIMH_TRACE
  std::unique_ptr<TraceFile> trace_;
  bool tracing_ = false;
#endif
};

}  // namespace

int main(int argc, char **argv) {
  Model model;
  return simh::run(model, argc, argv);
}
