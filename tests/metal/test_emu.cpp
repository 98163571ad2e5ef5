// The Metal emulator's own checks (tests/metal/emu; docs/METAL.md, "The emulator"): the shim's
// types and functions, the runtime's collectives and schedules, its error reports, and the
// emulated device's limits and buffers, each through a test kernel of
// tests/metal/emu/test_kernels/ against a host computation.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "emu_device.hpp"
#include "error.hpp"
#include "metal_test_util.hpp"

using namespace edgellm;
using namespace edgellm::test::metal;
namespace emu = edgellm::metal_emu;

namespace {

struct EmuTestArgs {
  uint32_t n, mode, a, b;
};

[[maybe_unused]] std::unique_ptr<emu::EmuDevice> device(emu::Schedule s = emu::Schedule::forward, uint64_t seed = 1) {
  emu::Options o;
  o.schedule = s;
  o.seed = seed;
  return std::make_unique<emu::EmuDevice>(o);
}

DispatchDesc desc(const char* kernel, const EmuTestArgs& args, std::initializer_list<BufView> bufs, Size3 grid,
                  Size3 tg, uint32_t tg_mem = 0) {
  DispatchDesc d;
  d.kernel = kernel;
  d.args = &args;
  d.args_bytes = sizeof(args);
  for (BufView b : bufs) d.buffers[d.n_buffers++] = b;
  d.grid = grid;
  d.tg = tg;
  d.tg_mem_bytes = tg_mem;
  return d;
}

}  // namespace

TEST_CASE("emu: a kernel runs over the grid", "[metal][emu]") {
  for (auto& td : test_devices()) {
    Device& dev = *td.dev;
    INFO(td.label);
    const uint32_t n = 100;
    std::vector<float> x(n);
    for (uint32_t i = 0; i < n; ++i) x[i] = float(i) * 0.5f;
    BufView bx = upload(dev, x), by = zeros<float>(dev, n);
    EmuTestArgs a{n, 0, 0, 0};
    dev.encode(desc("emu_test_add_one", a, {bx, by}, {4, 1, 1}, {32, 1, 1}));
    dev.commit_and_wait();
    auto y = download<float>(dev, by, n);
    for (uint32_t i = 0; i < n; ++i) REQUIRE(y[i] == x[i] + 1.0f);
  }
}
