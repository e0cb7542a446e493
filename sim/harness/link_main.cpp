// The simulated link: the Verilated LinkSystem (systolic/link/system.py) between a byte
// pipe and the host. Built by sim/link/simulated.py with the Verilated model Vtop.
//
//   link_sim            request bytes on stdin, reply bytes on stdout
//   link_sim --pty      a pseudo-terminal instead: prints "pty <path>" on stdout, then
//                       serves the terminal until stdin closes (so a serial-port
//                       program can open <path> as if it were the board)
//
// Request bytes enter the bridge's rx stream as fast as it takes them (one per cycle)
// and reply bytes leave tx at one per cycle: the UARTs of the board are left out, so
// the bytes are the board's but not their timing. While the system is idle (bridge idle,
// accelerator not running) nothing can change until the next byte, so the loop sleeps
// in poll() instead of clocking.
// Verilator spells the ports rx__valid, ... of the Amaranth streams as rx___05Fvalid, ...
#include "Vtop.h"
#include "verilated.h"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace {

void fail(const std::string &what) {
  std::fprintf(stderr, "error: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

void write_all(int fd, const std::vector<uint8_t> &bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write");
    done += size_t(n);
  }
}

// A pseudo-terminal in raw mode; the slave end stays open here, so that a client may
// close and reopen it without the master seeing a hang-up.
int open_pty(int &slave) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) || unlockpt(master)) fail("posix_openpt");
  const char *name = ptsname(master);
  if (!name) fail("ptsname");
  slave = ::open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) fail("open pty");
  termios mode;
  if (tcgetattr(slave, &mode)) fail("tcgetattr");
  cfmakeraw(&mode);
  if (tcsetattr(slave, TCSANOW, &mode)) fail("tcsetattr");
  std::printf("pty %s\n", name);
  std::fflush(stdout);
  return master;
}

class Link {
 public:
  Link() : context_(new VerilatedContext), top_(new Vtop{context_.get(), "top"}) {
    top_->clk = 0;
    top_->rst = 1;
    top_->tx___05Fready = 1;
    top_->rx___05Fvalid = 0;
    top_->eval();
    tick();
    top_->rst = 0;
    top_->eval();
  }
  ~Link() { top_->final(); }

  // One clock cycle with `in` offered on rx; returns whether the byte was taken, and
  // appends a reply byte to `out` if one left.
  bool cycle(std::deque<uint8_t> &in, std::vector<uint8_t> &out) {
    top_->rx___05Fvalid = !in.empty();
    if (!in.empty()) top_->rx___05Fpayload = in.front();
    top_->eval();
    bool taken = top_->rx___05Fvalid && top_->rx___05Fready;
    bool sent = top_->tx___05Fvalid;
    if (sent) out.push_back(uint8_t(top_->tx___05Fpayload));
    tick();
    if (taken) in.pop_front();
    top_->rx___05Fvalid = 0;
    top_->eval();
    return sent;
  }
  bool idle() const { return top_->idle; }

 private:
  void tick() {
    top_->clk = 1;
    top_->eval();
    top_->clk = 0;
    top_->eval();
  }
  std::unique_ptr<VerilatedContext> context_;
  std::unique_ptr<Vtop> top_;
};

// Read what `fd` has (waiting up to `timeout_ms`, -1 = forever); false at end of input.
bool receive(int fd, int control, std::deque<uint8_t> &in, int timeout_ms) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {control, POLLIN, 0}};
  int count = control >= 0 ? 2 : 1;
  int ready = ::poll(fds, nfds_t(count), timeout_ms);
  if (ready < 0 && errno != EINTR) fail("poll");
  if (ready <= 0) return true;
  if (count == 2 && fds[1].revents) {
    uint8_t scratch[256];
    if (::read(control, scratch, sizeof scratch) <= 0) return false;  // the host went away
  }
  if (fds[0].revents & POLLIN) {
    uint8_t buffer[65536];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) return false;
    if (n < 0 && errno != EINTR && errno != EAGAIN) fail("read");
    for (ssize_t i = 0; i < n; ++i) in.push_back(buffer[i]);
  } else if (fds[0].revents & (POLLHUP | POLLERR)) {
    return control >= 0;  // a pty client closed: wait for the next one
  }
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  bool pty = argc > 1 && std::string(argv[1]) == "--pty";
  int slave = -1, in_fd = 0, out_fd = 1, control = -1;
  if (pty) {
    in_fd = out_fd = open_pty(slave);
    control = 0;  // stdin: its end means stop
  }
  Link link;
  std::deque<uint8_t> in;
  std::vector<uint8_t> out;
  uint64_t cycles = 0;
  for (;;) {
    bool sent = link.cycle(in, out);
    ++cycles;
    if (!out.empty() && (!sent || out.size() >= 65536)) {
      write_all(out_fd, out);
      out.clear();
    }
    if (!in.empty()) continue;
    if (link.idle() && out.empty()) {
      if (!receive(in_fd, control, in, -1)) break;
    } else if ((cycles & 1023) == 0) {
      if (!receive(in_fd, control, in, 0)) break;
    }
  }
  if (slave >= 0) ::close(slave);
  return 0;
}
