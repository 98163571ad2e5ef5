// What every Metal test shares: the devices to run on, and host <-> device copies.
//
// On Linux (EDGELLM_METAL_EMULATOR) test_devices() is the emulator three times: the forward,
// reverse and a random thread schedule (a missing barrier shows under at least one of them:
// docs/METAL.md). On a Mac (EDGELLM_METAL) it is the real GPU, so the same tests check the
// kernels there (tools/metal-check.sh).
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "metal/device.hpp"
#include "metal/encode.hpp"

namespace edgellm::test::metal {

using namespace edgellm::engine::metal;

struct TestDevice {
  std::string label;  // "emulator, forward schedule", "Apple M2"
  std::unique_ptr<Device> dev;
};

std::vector<TestDevice> test_devices();

// A new buffer of exactly `bytes`, holding a copy of host data.
BufView upload(Device& dev, const void* data, size_t bytes);
template <typename T>
BufView upload(Device& dev, const std::vector<T>& v) {
  return upload(dev, v.data(), v.size() * sizeof(T));
}
// A new zero-filled buffer of n elements of T.
template <typename T>
BufView zeros(Device& dev, size_t n) {
  return {dev.alloc(n * sizeof(T)), 0};
}
// n elements of T from a buffer alloc()'d by this device (after commit_and_wait).
template <typename T>
std::vector<T> download(Device& dev, BufView b, size_t n) {
  std::vector<T> v(n);
  std::memcpy(v.data(), static_cast<const char*>(dev.contents(b.buf)) + b.offset, n * sizeof(T));
  return v;
}

}  // namespace edgellm::test::metal
