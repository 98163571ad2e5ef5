// The emulated Metal device (test builds only; docs/METAL.md, "The emulator"):
// engine::metal::Device on the CPU emulator. Buffers are host memory (alloc: exactly the size
// asked for, zero-filled, with a guard zone right after the end); encode() checks a dispatch
// against the limits a real GPU has (and the kernel's own parameters), commit_and_wait() runs the
// recorded dispatches in order on emu_runtime's fibers.
//
// In a build with EDGELLM_METAL_EMULATOR, engine::metal::make_device() returns one of these,
// with the schedule of EDGELLM_METAL_EMU_SCHEDULE=forward|reverse|random[:seed] (default forward).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "emu_runtime.hpp"
#include "metal/device.hpp"

namespace edgellm::metal_emu {

// Options from EDGELLM_METAL_EMU_SCHEDULE's value (null or empty: the defaults). Throws
// edgellm::Error(InvalidArgument) for anything else than forward, reverse, random or random:SEED.
Options options_from_schedule_text(const char* value);

class EmuDevice : public engine::metal::Device {
 public:
  explicit EmuDevice(const Options& o);
  ~EmuDevice() override;

  std::string name() const override;
  uint32_t simd_width() const override { return runtime_.options().simd_width; }
  engine::metal::BufferId wrap(const void* data, size_t bytes) override;
  engine::metal::BufferId alloc(size_t bytes) override;
  void* contents(engine::metal::BufferId buf) override;
  void encode(const engine::metal::DispatchDesc& d) override;
  void commit_and_wait() override;

  // For the emulator's own tests.
  size_t buffer_bytes(engine::metal::BufferId buf) const;
  size_t pending_dispatches() const { return pending_.size(); }
  const Options& options() const { return runtime_.options(); }

 private:
  struct Buffer {
    char* data = nullptr;
    size_t bytes = 0;
    bool owned = false;
    char* map = nullptr;  // alloc() in a normal build: the mapping (data .. slack, then a PROT_NONE page)
    size_t map_bytes = 0;
    size_t slack = 0;     // canary bytes between the end and the guard page (16-byte alignment)
  };
  struct Pending {
    Launch launch;
    std::vector<uint64_t> args;  // 8-byte aligned copy of the argument bytes
    engine::metal::BufferId ids[kMaxBuffers + 1] = {};
    uint64_t offsets[kMaxBuffers + 1] = {};
  };
  Buffer& buffer(engine::metal::BufferId id, const char* what);
  void check_canaries(const Pending& p);

  Runtime runtime_;
  std::vector<Buffer> buffers_;  // id - 1
  std::vector<std::unique_ptr<Pending>> pending_;
};

std::unique_ptr<engine::metal::Device> make_emulated_device(const Options& o);

}  // namespace edgellm::metal_emu
