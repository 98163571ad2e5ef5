// edgellm_quantize through the C API and the C++ wrapper, on stories260K (F32): argument and
// input errors with their status and message and no file left behind, the per-tensor callback
// (every tensor once, in file order, with the sizes the output file then holds), cancelling,
// output independent of the thread count, in-place quantization, metadata kept. The recipe and
// the bytes themselves are checked against llama.cpp in tests/oracle/test_quantize_vs_llama.cpp.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgellm/edgellm.h"
#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"

namespace {

namespace gguf = edgellm::gguf;

const std::string kTmp = EDGELLM_TEST_TMP;
const std::string kStories = std::string(EDGELLM_SHARED_MODELS) + "/stories260K.gguf";

std::string tmp(const std::string& name) {
  std::filesystem::create_directories(kTmp);
  return kTmp + "/quantize-" + std::to_string(getpid()) + "-" + name;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

std::string last_error() { return edgellm_last_error(); }

// stories260K with tensor `retype` declared as `type`: I32 (F32's size, the data kept) or Q8_0
// (zero blocks), to make inputs the quantizer must refuse.
std::string stories_with(const std::string& name, const std::string& retype, edgellm::DType type) {
  const gguf::File f = gguf::File::open(kStories);
  gguf::Writer w;
  for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
  for (const auto& t : f.tensors())
    w.add_tensor(t.name, t.name == retype ? type : t.type, std::span<const uint64_t>(t.ne, t.n_dims));
  const std::string path = tmp(name);
  w.begin(path);
  for (const auto& t : f.tensors()) {
    if (t.name == retype && type == edgellm::DType::Q8_0) {
      const std::vector<uint8_t> zeros(t.n_elements() / 32 * 34, 0);  // 34 bytes per 32 elements
      w.write_tensor_data(zeros.data(), zeros.size());
    } else {
      w.write_tensor_data(t.data, t.n_bytes);
    }
  }
  w.finish();
  return path;
}

}  // namespace

TEST_CASE("edgellm_quantize: bad arguments give a status and a message, and no file", "[api][quantize]") {
  const std::string out = tmp("bad-args.gguf");
  CHECK(edgellm_quantize(nullptr, out.c_str(), "Q8_0", nullptr) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error() == "edgellm_quantize: input is NULL");
  CHECK(edgellm_quantize(kStories.c_str(), nullptr, "Q8_0", nullptr) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), nullptr, nullptr) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error() == "edgellm_quantize: type is NULL");

  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), "Q9_K", nullptr) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("unknown type 'Q9_K'") != std::string::npos);
  CHECK(last_error().find("Q4_K_M, Q4_K_S, Q5_K_M") != std::string::npos);  // the choices are listed
  // A file type llama.cpp has but that is not made here (an importance-matrix type).
  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), "IQ2_XXS", nullptr) == EDGELLM_ERR_INVALID_ARGUMENT);

  edgellm_quantize_params p = edgellm_quantize_default_params();
  CHECK(p.struct_size == sizeof p);
  CHECK(p.n_threads == 0);
  CHECK(p.callback == nullptr);
  p.n_threads = -1;
  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), "Q8_0", &p) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("n_threads") != std::string::npos);
  p = edgellm_quantize_default_params();
  p.struct_size = 0;
  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), "Q8_0", &p) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("edgellm_quantize_params.struct_size is 0") != std::string::npos);
  p.struct_size = sizeof p + 8;
  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), "Q8_0", &p) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(!exists(out));
  CHECK(!exists(out + ".part"));
}

TEST_CASE("edgellm_quantize: unreadable, non-model, quantized and unconvertible inputs are refused", "[api][quantize]") {
  const std::string out = tmp("bad-input.gguf");
  CHECK(edgellm_quantize((kTmp + "/no-such-file.gguf").c_str(), out.c_str(), "Q8_0", nullptr) == EDGELLM_ERR_IO);
  CHECK(last_error().find("no-such-file.gguf") != std::string::npos);
  CHECK(edgellm_quantize(kTmp.c_str(), out.c_str(), "Q8_0", nullptr) == EDGELLM_ERR_IO);  // a directory

  const std::string text = tmp("not-gguf.txt");
  std::ofstream(text) << "hello, not a model\n";
  CHECK(edgellm_quantize(text.c_str(), out.c_str(), "Q8_0", nullptr) == EDGELLM_ERR_FORMAT);

  // Already quantized: refused, naming the tensor and its type.
  const std::string q = stories_with("one-q8_0.gguf", "blk.2.attn_q.weight", edgellm::DType::Q8_0);
  CHECK(edgellm_quantize(q.c_str(), out.c_str(), "Q4_K_M", nullptr) == EDGELLM_ERR_UNSUPPORTED);
  CHECK(last_error().find("already quantized") != std::string::npos);
  CHECK(last_error().find("'blk.2.attn_q.weight' is q8_0") != std::string::npos);

  // A matrix of a type with no conversion (I32) that the recipe would convert.
  const std::string i32 = stories_with("one-i32.gguf", "blk.1.ffn_up.weight", edgellm::DType::I32);
  CHECK(edgellm_quantize(i32.c_str(), out.c_str(), "Q8_0", nullptr) == EDGELLM_ERR_UNSUPPORTED);
  CHECK(last_error().find("'blk.1.ffn_up.weight' is i32") != std::string::npos);
  CHECK(!exists(out));
  CHECK(!exists(out + ".part"));

  // An output that cannot be created.
  CHECK(edgellm_quantize(kStories.c_str(), (kTmp + "/no-such-dir/x.gguf").c_str(), "Q8_0", nullptr) ==
        EDGELLM_ERR_IO);
  CHECK(last_error().find("cannot create") != std::string::npos);
}

TEST_CASE("edgellm_quantize: the callback sees every tensor once, in file order, with the sizes written", "[api][quantize]") {
  const std::string out = tmp("q4_k_m.gguf");
  std::vector<edgellm_quantize_progress> seen;
  std::vector<std::string> names, types_out, types_wanted;
  edgellm::quantize(kStories, out, "q4_k_m", [&](const edgellm_quantize_progress& t) {
    seen.push_back(t);
    names.emplace_back(t.name);
    types_out.emplace_back(t.type_out);
    types_wanted.emplace_back(t.type_wanted);
    CHECK(std::string(t.type_in) == "f32");
    return true;
  });
  const gguf::File in = gguf::File::open(kStories), q = gguf::File::open(out);
  REQUIRE(seen.size() == in.tensors().size());
  REQUIRE(q.tensors().size() == in.tensors().size());
  for (size_t i = 0; i < seen.size(); ++i) {
    const gguf::TensorInfo &a = in.tensors()[i], &b = q.tensors()[i];
    INFO(a.name);
    CHECK(seen[i].struct_size == sizeof(edgellm_quantize_progress));
    CHECK(seen[i].index == static_cast<int32_t>(i));
    CHECK(seen[i].n_tensors == static_cast<int32_t>(seen.size()));
    CHECK(names[i] == a.name);
    CHECK(b.name == a.name);
    CHECK(seen[i].n_dims == static_cast<int32_t>(a.n_dims));
    for (int d = 0; d < 4; ++d) CHECK(seen[i].ne[d] == static_cast<int64_t>(a.ne[d]));
    CHECK(seen[i].bytes_in == a.n_bytes);
    CHECK(seen[i].bytes_out == b.n_bytes);
    CHECK(types_out[i] == edgellm::dtype_name(static_cast<uint32_t>(b.type)));
    if (a.n_dims == 1) CHECK(types_out[i] == "f32");  // norms stay F32
  }
  // 64-wide rows do not fit Q4_K: the callback says what the recipe wanted.
  CHECK(types_wanted[3] == "q4_K");  // blk.0.attn_q.weight
  CHECK(types_out[3] == "q5_0");
  // output.weight: the recipe itself picks Q8_0 (not Q6_K) when rows do not fit the main type.
  CHECK(types_wanted[2] == "q8_0");
  CHECK(types_out[2] == "q8_0");

  // Metadata: every key of the input, with its value; general.file_type is LLAMA_FTYPE_MOSTLY_Q4_K_M.
  for (const auto& kv : in.metadata()) {
    INFO(kv.key);
    const gguf::Value* v = q.find(kv.key);
    REQUIRE(v != nullptr);
    CHECK(*v == kv.value);
  }
  CHECK(q.get<uint32_t>("general.file_type") == 15);
  CHECK(q.get<uint32_t>("general.quantization_version") == 2);
  CHECK(q.metadata().size() == in.metadata().size() + 2);
  edgellm::Model model(out);
  CHECK(std::string(model.info().description).find("Q4_K - Medium") != std::string::npos);
}

TEST_CASE("edgellm_quantize: a callback returning false cancels and leaves no file", "[api][quantize]") {
  const std::string out = tmp("cancelled.gguf");
  struct Count {
    int n = 0;
  } count;
  edgellm_quantize_params p = edgellm_quantize_default_params();
  p.user_data = &count;
  p.callback = [](const edgellm_quantize_progress*, void* user) { return ++static_cast<Count*>(user)->n < 3; };
  CHECK(edgellm_quantize(kStories.c_str(), out.c_str(), "Q8_0", &p) == EDGELLM_ERR_CANCELLED);
  CHECK(count.n == 3);
  CHECK(last_error().find("cancelled") != std::string::npos);
  CHECK(!exists(out));
  CHECK(!exists(out + ".part"));
  // An exception from the C++ callback stops the call and arrives as itself.
  CHECK_THROWS_WITH(edgellm::quantize(kStories, out, "Q8_0", [](const edgellm_quantize_progress&) -> bool {
                      throw std::runtime_error("stop here");
                    }),
                    "stop here");
  CHECK(!exists(out));
}

TEST_CASE("edgellm_quantize: the output does not depend on the thread count; in place works", "[api][quantize]") {
  for (const char* type : {"Q4_K_M", "Q5_K_S", "IQ4_NL", "F16"}) {
    INFO(type);
    const std::string a = tmp("t1.gguf"), b = tmp("t3.gguf");
    edgellm::quantize(kStories, a, type, {}, 1);
    edgellm::quantize(kStories, b, type, {}, 3);
    CHECK(slurp(a) == slurp(b));
  }
  // The output may be the input itself (written beside it, then renamed over it).
  const std::string copy = tmp("in-place.gguf"), reference = tmp("reference.gguf");
  std::filesystem::copy_file(kStories, copy, std::filesystem::copy_options::overwrite_existing);
  edgellm::quantize(kStories, reference, "Q8_0");
  edgellm::quantize(copy, copy, "Q8_0");
  CHECK(slurp(copy) == slurp(reference));
  CHECK(!exists(copy + ".part"));
  // ... and once quantized it is refused as input.
  CHECK(edgellm_quantize(copy.c_str(), copy.c_str(), "Q4_0", nullptr) == EDGELLM_ERR_UNSUPPORTED);
  CHECK(slurp(copy) == slurp(reference));
}
