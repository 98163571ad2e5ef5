#include "metal_test_util.hpp"

#if defined(EDGELLM_METAL_EMULATOR)
#include "emu_device.hpp"
#endif

namespace edgellm::test::metal {

std::vector<TestDevice> test_devices() {
  std::vector<TestDevice> out;
#if defined(EDGELLM_METAL_EMULATOR)
  using metal_emu::Schedule;
  for (Schedule s : {Schedule::forward, Schedule::reverse, Schedule::random}) {
    metal_emu::Options o;
    o.schedule = s;
    o.seed = 0x5eed;
    out.push_back({std::string("emulator, ") + metal_emu::schedule_name(s) + " schedule",
                   metal_emu::make_emulated_device(o)});
  }
#else
  auto dev = make_device();
  std::string label = dev->name();
  out.push_back({label, std::move(dev)});
#endif
  return out;
}

BufView upload(Device& dev, const void* data, size_t bytes) {
  const BufferId id = dev.alloc(bytes == 0 ? 1 : bytes);  // exact: the emulator guards its end
  if (bytes) std::memcpy(dev.contents(id), data, bytes);
  return {id, 0};
}

}  // namespace edgellm::test::metal
