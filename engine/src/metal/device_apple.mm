// metal::Device on the system's Metal GPU (Apple builds, EDGELLM_METAL): the only file that calls
// the Metal API (docs/METAL.md). Objective-C++ with ARC.
//
// - The kernels are compiled at run time from their source text (shader_sources.hpp, embedded by
//   cmake/metal_shaders.cmake): one MTLLibrary per .metal file, compiled once per process, and a
//   compute pipeline per kernel name, made at its first dispatch and cached (also per process:
//   every context of the process shares the one system GPU).
// - Buffers are shared-storage MTLBuffers: the host reads and writes them in place (contents()),
//   the model's mapping is wrapped without a copy (newBufferWithBytesNoCopy).
// - A step is one command buffer with one serial compute encoder: each dispatch sees the writes of
//   the ones before it. commit_and_wait() ends it, commits, waits and reports the GPU's error.
//
// Objective-C objects are made inside @autoreleasepool blocks and every error is thrown after the
// block is left, so no pool is skipped by a C++ exception.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "error.hpp"
#include "metal/device.hpp"
#include "metal/shader_sources.hpp"

namespace edgellm::engine::metal {

namespace {

using Kind = Error::Kind;

std::string text_of(NSString* s) {
  const char* utf8 = s ? [s UTF8String] : nullptr;
  return utf8 ? std::string(utf8) : std::string();
}

std::string describe(NSError* e) {
  if (!e) return "(no description)";
  const std::string d = text_of([e localizedDescription]);
  return d.empty() ? "error " + std::to_string(static_cast<long>([e code])) : d;
}

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

size_t page_size() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<size_t>(page) : 16384;
}

// The compiled kernels of the process: the libraries (one per .metal file) and the pipelines made
// so far, for the one device MTLCreateSystemDefaultDevice returns. Never destroyed (contexts may
// outlive static destructors at exit).
struct Kernels {
  std::mutex mutex;
  id<MTLDevice> device = nil;
  std::vector<id<MTLLibrary>> libraries;
  std::unordered_map<std::string, id<MTLComputePipelineState>> pipelines;
};

Kernels& kernels() {
  static Kernels* k = new Kernels;
  return *k;
}

// Compiles every embedded source for `device` (under k.mutex); an empty string, or why not.
std::string compile_libraries(Kernels& k, id<MTLDevice> device) {
  if (k.device == device && !k.libraries.empty()) return {};
  std::string error;
  std::vector<id<MTLLibrary>> libraries;
  @autoreleasepool {
    MTLCompileOptions* options = [[MTLCompileOptions alloc] init];
    options.languageVersion = MTLLanguageVersion2_3;  // docs/METAL.md: MSL 2.3 on Apple7 and later
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
    // IEEE float math, as the CPU reference (fastMathEnabled is replaced by mathMode on macOS 15,
    // and still honoured there).
    options.fastMathEnabled = NO;
#pragma clang diagnostic pop
    for (int i = 0; i < kShaderSourceCount && error.empty(); ++i) {
      NSString* source = [NSString stringWithUTF8String:kShaderSources[i].text];
      NSError* err = nil;
      id<MTLLibrary> library = source ? [device newLibraryWithSource:source options:options error:&err] : nil;
      if (!library)
        error = std::string("metal: compiling the kernels of ") + kShaderSources[i].file +
                " failed: " + (source ? describe(err) : std::string("the source is not UTF-8"));
      else
        libraries.push_back(library);
    }
  }
  if (!error.empty()) return error;
  k.device = device;
  k.libraries = std::move(libraries);
  k.pipelines.clear();
  return {};
}

class AppleDevice final : public Device {
 public:
  AppleDevice(id<MTLDevice> device, id<MTLCommandQueue> queue) : device_(device), queue_(queue) {}

  ~AppleDevice() override {
    // A step left open (its op threw): end the encoder so Metal does not assert on release.
    @autoreleasepool {
      if (encoder_) [encoder_ endEncoding];
      encoder_ = nil;
      command_ = nil;
      buffers_.clear();
    }
  }

  std::string name() const override {
    @autoreleasepool {
      return text_of([device_ name]);
    }
  }

  uint32_t simd_width() const override {
    if (simd_width_ == 0) {
      // threadExecutionWidth is a pipeline's property; every kernel has the device's width.
      id<MTLComputePipelineState> p = const_cast<AppleDevice*>(this)->pipeline("kernel_add");
      simd_width_ = static_cast<uint32_t>([p threadExecutionWidth]);
    }
    return simd_width_;
  }

  BufferId wrap(const void* data, size_t bytes) override {
    const size_t page = page_size();
    if (reinterpret_cast<uintptr_t>(data) % page != 0)
      throw Error(Kind::InvalidArgument, "metal: wrap: the address is not page-aligned");
    // newBufferWithBytesNoCopy takes whole pages: the mapping (and LoadMode::Read's copy) is
    // allocated in whole pages, so the rounded length stays inside it.
    const size_t length = round_up(bytes == 0 ? 1 : bytes, page);
    check_length(length, "the model's weights");
    std::string error;
    @autoreleasepool {
      // The GPU only reads it (the kernels take weights as `device const`); nil deallocator: the
      // model owns the mapping and outlives every context on it.
      id<MTLBuffer> b = [device_ newBufferWithBytesNoCopy:const_cast<void*>(data)
                                                   length:length
                                                  options:MTLResourceStorageModeShared
                                              deallocator:nil];
      if (b) buffers_.push_back(b);
      else error = "metal: the GPU cannot map the model's " + std::to_string(bytes) + " bytes in place";
    }
    if (!error.empty()) throw Error(Kind::OutOfMemory, error);
    return static_cast<BufferId>(buffers_.size());
  }

  BufferId alloc(size_t bytes) override {
    const size_t length = bytes == 0 ? 1 : bytes;
    check_length(length, "a buffer");
    bool ok = false;
    @autoreleasepool {
      id<MTLBuffer> b = [device_ newBufferWithLength:length options:MTLResourceStorageModeShared];
      if (b) {
        std::memset([b contents], 0, length);  // new buffers are not guaranteed zeroed
        buffers_.push_back(b);
        ok = true;
      }
    }
    if (!ok)
      throw Error(Kind::OutOfMemory, "metal: the GPU cannot allocate a buffer of " + std::to_string(bytes) + " bytes");
    return static_cast<BufferId>(buffers_.size());
  }

  void* contents(BufferId buf) override { return [buffer(buf, "contents") contents]; }

  void encode(const DispatchDesc& d) override {
    if (!d.kernel) throw Error(Kind::InvalidArgument, "metal: a dispatch names no kernel");
    const std::string where = std::string("metal: dispatch of ") + d.kernel + ": ";
    if (d.n_buffers < 0 || d.n_buffers > kMaxBindings)
      throw Error(Kind::InvalidArgument, where + std::to_string(d.n_buffers) + " buffers (at most " +
                                             std::to_string(kMaxBindings) + ")");
    if (!d.args || d.args_bytes == 0 || d.args_bytes > 4096)  // setBytes takes up to 4 KiB
      throw Error(Kind::InvalidArgument, where + "arguments of " + std::to_string(d.args_bytes) + " bytes");
    if (d.tg_mem_bytes % 16 != 0 || d.tg_mem_bytes > kMaxThreadgroupMemory ||
        d.tg_mem_bytes > [device_ maxThreadgroupMemoryLength])
      throw Error(Kind::InvalidArgument, where + std::to_string(d.tg_mem_bytes) +
                                             " bytes of threadgroup memory (a multiple of 16, at most " +
                                             std::to_string(kMaxThreadgroupMemory) + ")");
    if (d.tg.count() == 0 || d.tg.count() > kMaxThreadsPerThreadgroup || d.grid.count() == 0)
      throw Error(Kind::InvalidArgument, where + "a grid of " + std::to_string(d.grid.count()) +
                                             " threadgroups of " + std::to_string(d.tg.count()) + " threads");
    id<MTLComputePipelineState> p = pipeline(d.kernel);
    if ([p maxTotalThreadsPerThreadgroup] < d.tg.count())
      throw Error(Kind::Unsupported, where + "this GPU runs it with at most " +
                                         std::to_string(static_cast<unsigned long>([p maxTotalThreadsPerThreadgroup])) +
                                         " threads per threadgroup; the dispatch has " +
                                         std::to_string(d.tg.count()));
    id<MTLBuffer> bound[kMaxBindings];
    for (int i = 0; i < d.n_buffers; ++i) {
      bound[i] = buffer(d.buffers[i].buf, d.kernel);
      if (d.buffers[i].offset >= [bound[i] length])
        throw Error(Kind::InvalidArgument, where + "buffer(" + std::to_string(i + 1) + ")'s offset " +
                                               std::to_string(d.buffers[i].offset) + " is past its end");
    }
    bool ok = true;
    @autoreleasepool {
      if (!encoder_) {
        command_ = [queue_ commandBuffer];
        encoder_ = command_ ? [command_ computeCommandEncoder] : nil;  // serial dispatch (the default)
        if (!encoder_) command_ = nil;
      }
      if (encoder_) {
        [encoder_ setComputePipelineState:p];
        [encoder_ setBytes:d.args length:d.args_bytes atIndex:0];
        for (int i = 0; i < d.n_buffers; ++i)
          [encoder_ setBuffer:bound[i] offset:d.buffers[i].offset atIndex:static_cast<NSUInteger>(i + 1)];
        if (d.tg_mem_bytes > 0) [encoder_ setThreadgroupMemoryLength:d.tg_mem_bytes atIndex:0];
        [encoder_ dispatchThreadgroups:MTLSizeMake(d.grid.x, d.grid.y, d.grid.z)
                 threadsPerThreadgroup:MTLSizeMake(d.tg.x, d.tg.y, d.tg.z)];
      } else {
        ok = false;
      }
    }
    if (!ok) throw Error(Kind::OutOfMemory, where + "the GPU gave no command buffer");
  }

  void commit_and_wait() override {
    if (!command_) return;  // nothing was encoded
    std::string error;
    Kind kind = Kind::Io;
    @autoreleasepool {
      id<MTLCommandBuffer> command = command_;
      [encoder_ endEncoding];
      encoder_ = nil;
      command_ = nil;
      [command commit];
      [command waitUntilCompleted];
      if ([command status] == MTLCommandBufferStatusError) {
        NSError* e = [command error];
        // Out of memory is the caller's to act on; other failures (a fault, a timeout) are the
        // device's, reported as an I/O error of the device with Metal's words.
        if (e && [[e domain] isEqualToString:MTLCommandBufferErrorDomain] && [e code] == MTLCommandBufferErrorOutOfMemory)
          kind = Kind::OutOfMemory;
        error = "metal: the GPU failed the step: " + describe(e);
      } else if ([command status] != MTLCommandBufferStatusCompleted) {
        error = "metal: the step's command buffer ended in state " + std::to_string(static_cast<long>([command status]));
      }
    }
    if (!error.empty()) throw Error(kind, error);
  }

 private:
  id<MTLBuffer> buffer(BufferId buf, const char* what) const {
    if (buf == 0 || buf > buffers_.size())
      throw Error(Kind::InvalidArgument, std::string("metal: ") + what + ": no buffer " + std::to_string(buf));
    return buffers_[buf - 1];
  }

  void check_length(size_t length, const char* what) const {
    if (length > [device_ maxBufferLength])
      throw Error(Kind::OutOfMemory, std::string("metal: ") + what + " of " + std::to_string(length) +
                                         " bytes is larger than this GPU's largest buffer (" +
                                         std::to_string(static_cast<unsigned long long>([device_ maxBufferLength])) +
                                         " bytes)");
  }

  // The kernel's pipeline, made at its first use.
  id<MTLComputePipelineState> pipeline(const char* kernel) {
    if (auto it = pipelines_.find(kernel); it != pipelines_.end()) return it->second;
    Kernels& k = kernels();
    std::string error;
    Kind kind = Kind::Unsupported;
    id<MTLComputePipelineState> p = nil;
    {
      std::lock_guard<std::mutex> lock(k.mutex);
      error = compile_libraries(k, device_);
      if (error.empty()) {
        if (auto it = k.pipelines.find(kernel); it != k.pipelines.end()) p = it->second;
      }
      if (error.empty() && !p) {
        @autoreleasepool {
          NSString* name = [NSString stringWithUTF8String:kernel];
          id<MTLFunction> fn = nil;
          for (id<MTLLibrary> library : k.libraries) {
            fn = name ? [library newFunctionWithName:name] : nil;
            if (fn) break;
          }
          if (!fn) {
            kind = Kind::InvalidArgument;
            error = std::string("metal: no kernel named '") + kernel + "' in the Metal kernels' sources";
          } else {
            NSError* err = nil;
            p = [device_ newComputePipelineStateWithFunction:fn error:&err];
            if (!p) error = std::string("metal: cannot make the pipeline of kernel ") + kernel + ": " + describe(err);
            else k.pipelines.emplace(kernel, p);
          }
        }
      }
    }
    if (!error.empty()) throw Error(kind, error);
    pipelines_.emplace(kernel, p);
    return p;
  }

  id<MTLDevice> device_;
  id<MTLCommandQueue> queue_;
  std::vector<id<MTLBuffer>> buffers_;  // BufferId i is buffers_[i - 1]
  std::unordered_map<std::string, id<MTLComputePipelineState>> pipelines_;  // this device's lookups
  id<MTLCommandBuffer> command_ = nil;           // the step being encoded, or nil
  id<MTLComputeCommandEncoder> encoder_ = nil;
  mutable uint32_t simd_width_ = 0;
};

}  // namespace

std::unique_ptr<Device> make_device() {
  std::string error;
  id<MTLDevice> device = nil;
  id<MTLCommandQueue> queue = nil;
  @autoreleasepool {
    device = MTLCreateSystemDefaultDevice();
    if (!device) {
      error = "metal: this machine has no Metal GPU";
    } else if (![device supportsFamily:MTLGPUFamilyApple7]) {
      // docs/METAL.md rule 7: the kernels use MSL 2.3 on Apple7 (M1 / A14) and later.
      error = "metal: the GPU '" + text_of([device name]) +
              "' is older than the Apple7 family (M1 / A14) the Metal kernels need; use backend \"cpu\"";
    } else {
      queue = [device newCommandQueue];
      if (!queue) error = "metal: the GPU '" + text_of([device name]) + "' gave no command queue";
    }
  }
  if (!error.empty()) throw Error(Kind::Unsupported, error);
  return std::make_unique<AppleDevice>(device, queue);
}

}  // namespace edgellm::engine::metal
