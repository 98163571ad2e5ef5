// Hostile and changing model files: the file truncated or overwritten while it is loaded (mapped
// and read into memory), FIFOs and other non-regular paths, hyperparameters that claim far more
// than the file holds, bad RoPE scaling factors, and file text with terminal escape sequences in
// every message and tool output that can quote it.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "chat_template.hpp"
#include "context.hpp"
#include "edgellm/edgellm.h"
#include "edgellm/gguf.hpp"
#include "error.hpp"
#include "model.hpp"
#include "tokenizer.hpp"

// ---- Largest single allocation, counted while armed (for the block_count test) -------------------
// (malloc/free underneath: GCC sees through the replacement and would call the pair mismatched.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> g_count_allocs{false};
std::atomic<size_t> g_largest_alloc{0};
}  // namespace

void* operator new(size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) {
    size_t prev = g_largest_alloc.load(std::memory_order_relaxed);
    while (n > prev && !g_largest_alloc.compare_exchange_weak(prev, n)) {
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
// Every other unaligned form too, so each allocation and its release take the same path (under
// ASan the forms left out are its own, and a mix is an alloc-dealloc mismatch).
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace edgellm;
using namespace edgellm::engine;

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;
const std::string kTmp = EDGELLM_TEST_TMP;
const std::string kBin = EDGELLM_BIN_DIR;
const std::string kStories = kModels + "/stories260K.gguf";

std::string tmp_path(const std::string& name) { return kTmp + "/hostile-" + std::to_string(getpid()) + "-" + name; }

std::string copy_of_stories(const std::string& name) {
  const std::string path = tmp_path(name);
  std::filesystem::copy_file(kStories, path, std::filesystem::copy_options::overwrite_existing);
  return path;
}

bool has_esc(const std::string& s) { return s.find('\x1b') != std::string::npos; }

std::vector<float> first_logits(Context& ctx) {
  ctx.clear();
  const std::vector<int32_t> prompt{1, 403, 385, 410};
  ctx.eval(prompt);
  return std::vector<float>(ctx.logits(), ctx.logits() + ctx.n_vocab());
}

// Overwrites the whole file with zeros, in place (same inode, same size).
void zero_in_place(const std::string& path) {
  const auto size = std::filesystem::file_size(path);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  const std::vector<char> zeros(size, 0);
  f.write(zeros.data(), std::streamsize(size));
  REQUIRE(f.good());
}

// stories260K's tensors with its metadata, one key set to `value` (or the edit applied).
template <class Edit>
std::vector<uint8_t> stories_with(Edit edit) {
  static const gguf::File src = gguf::File::open(kStories);
  gguf::Writer w;
  for (const gguf::KeyValue& kv : src.metadata()) w.set(kv.key, kv.value);
  std::vector<std::span<const uint8_t>> data;
  for (const gguf::TensorInfo& t : src.tensors()) {
    w.add_tensor(t.name, t.type, std::span<const uint64_t>(t.ne, t.n_dims));
    data.emplace_back(t.data, t.n_bytes);
  }
  edit(w);
  return w.to_bytes(data);
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

struct Run {
  int rc = -1;
  std::string out;  // stdout and stderr together
};

// Runs a shell command line under `timeout` (a hang fails instead of hanging the test).
Run run(const std::string& cmd) {
  const std::string full = "timeout -s KILL 20 " + cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  REQUIRE(p);
  Run r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    Model m(gguf::File::parse(bytes));
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(loaded)";
}

Error::Kind kind_of(const std::vector<uint8_t>& bytes) {
  try {
    Model m(gguf::File::parse(bytes));
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("loaded without an edgellm::Error");
  return Error::Kind::InvalidArgument;
}

}  // namespace

// ---- 1. The file changes while it is loaded --------------------------------------------------------

TEST_CASE("use_mmap = false: the weights are read into memory, the file may then change", "[engine][hostile]") {
  const std::string path = copy_of_stories("read-mode.gguf");
  Model model = Model::load(path, gguf::LoadMode::Read);
  CHECK_FALSE(model.file().mapped());
  // Page-aligned like a mapping.
  CHECK(reinterpret_cast<uintptr_t>(model.file().image().data()) % 4096 == 0);
  ContextOptions o;
  o.n_ctx = 32;
  Context ctx(model, o);
  const std::vector<float> before = first_logits(ctx);

  zero_in_place(path);  // overwritten in place
  CHECK(first_logits(ctx) == before);
  std::filesystem::resize_file(path, 100);  // truncated
  CHECK(first_logits(ctx) == before);
  std::filesystem::remove(path);  // gone
  CHECK(first_logits(ctx) == before);

  // The same logits as the mapped shared file.
  Model mapped = Model::load(kStories);
  CHECK(mapped.file().mapped());
  Context ctx2(mapped, o);
  CHECK(first_logits(ctx2) == before);
}

TEST_CASE("C API use_mmap = false: truncating and overwriting the file changes nothing", "[engine][hostile][api]") {
  const std::string path = copy_of_stories("read-mode-api.gguf");
  edgellm_model_params mp = edgellm_model_default_params();
  mp.use_mmap = false;
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(path.c_str(), &mp, &m) == EDGELLM_OK);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 32;
  edgellm_context* c = nullptr;
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  const edgellm_token prompt[] = {1, 403, 385};
  REQUIRE(edgellm_eval(c, prompt, 3) == EDGELLM_OK);
  const std::vector<float> before(edgellm_get_logits(c), edgellm_get_logits(c) + 512);

  std::filesystem::resize_file(path, 4096);
  edgellm_clear(c);
  REQUIRE(edgellm_eval(c, prompt, 3) == EDGELLM_OK);
  CHECK(std::vector<float>(edgellm_get_logits(c), edgellm_get_logits(c) + 512) == before);
  std::filesystem::resize_file(path, 0);
  std::filesystem::resize_file(path, std::filesystem::file_size(kStories));  // zeros, full size
  REQUIRE(edgellm_eval(c, prompt, 1) == EDGELLM_OK);
  edgellm_context_free(c);
  edgellm_model_free(m);
  std::filesystem::remove(path);
}

TEST_CASE("mmap: a file truncated after load gives a clear error on the next eval, not SIGBUS", "[engine][hostile][api]") {
  const std::string path = copy_of_stories("mapped-truncated.gguf");
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(path.c_str(), nullptr, &m) == EDGELLM_OK);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 32;
  edgellm_context* c = nullptr;
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  const edgellm_token bos = 1;
  REQUIRE(edgellm_eval(c, &bos, 1) == EDGELLM_OK);

  std::filesystem::resize_file(path, 4096);
  CHECK(edgellm_eval(c, &bos, 1) == EDGELLM_ERR_IO);
  const std::string err = edgellm_last_error();
  INFO(err);
  CHECK_THAT(err, Catch::Contains("truncated") && Catch::Contains("mapped-truncated.gguf") &&
                      Catch::Contains("use_mmap = false"));
  CHECK(edgellm_n_past(c) == 1);  // nothing was changed
  edgellm_context_free(c);
  edgellm_model_free(m);
  std::filesystem::remove(path);
}

TEST_CASE("mmap: a file overwritten in place after load is detected before the next eval", "[engine][hostile]") {
  const std::string path = copy_of_stories("mapped-overwritten.gguf");
  Model model = Model::load(path);
  ContextOptions o;
  o.n_ctx = 32;
  Context ctx(model, o);
  first_logits(ctx);
  // Make sure the modification time moves even on a coarse clock.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  zero_in_place(path);
  try {
    first_logits(ctx);
    FAIL("eval ran on weights overwritten under the mapping");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Io);
    CHECK_THAT(e.what(), Catch::Contains("modified"));
  }
  std::filesystem::remove(path);
}

// ---- 2. FIFOs and other non-regular files ----------------------------------------------------------

TEST_CASE("a FIFO as the model path is refused at once, not waited on", "[engine][hostile][api]") {
  const std::string fifo = tmp_path("model.fifo");
  ::unlink(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);

  // The C API, in a child so that a regression (blocking in open) fails on the timeout.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(10);  // a blocked open dies with SIGALRM
    edgellm_model* m = nullptr;
    const edgellm_status s = edgellm_model_load(fifo.c_str(), nullptr, &m);
    const std::string err = edgellm_last_error();
    const bool ok = s == EDGELLM_ERR_IO && m == nullptr && err.find("not a regular file") != std::string::npos &&
                    err.find("FIFO") != std::string::npos;
    edgellm_model_params mp = edgellm_model_default_params();
    mp.use_mmap = false;
    const bool ok_read = edgellm_model_load(fifo.c_str(), &mp, &m) == EDGELLM_ERR_IO;
    _exit(ok && ok_read ? 0 : 1);
  }
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  INFO("child status " << st);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);

  // The tools (under `timeout`).
  const Run gguf_tool = run(kBin + "/edgellm-gguf " + quoted(fifo));
  INFO(gguf_tool.out);
  CHECK(gguf_tool.rc == 1);
  CHECK_THAT(gguf_tool.out, Catch::Contains("not a regular file"));
  const Run cli = run(kBin + "/edgellm-cli -m " + quoted(fifo) + " -p x -n 1 </dev/null");
  INFO(cli.out);
  CHECK(cli.rc >= 1);
  CHECK(cli.rc < 124);
  CHECK_THAT(cli.out, Catch::Contains("not a regular file"));

  // A directory is refused the same way.
  try {
    Model::load(kTmp);
    FAIL("loaded a directory");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Io);
    CHECK_THAT(e.what(), Catch::Contains("directory"));
  }
  ::unlink(fifo.c_str());
}

// ---- 3. Hyperparameters that claim more than the file holds ----------------------------------------

TEST_CASE("a huge block_count is refused before anything is sized by it", "[engine][hostile]") {
  const auto bytes = stories_with([](gguf::Writer& w) { w.set("llama.block_count", uint32_t{1} << 20); });
  REQUIRE(bytes.size() < 2'000'000);
  g_largest_alloc = 0;
  g_count_allocs = true;
  const auto t0 = std::chrono::steady_clock::now();
  std::string err;
  Error::Kind kind = Error::Kind::InvalidArgument;
  try {
    Model m(gguf::File::parse(bytes));
  } catch (const Error& e) {
    err = e.what();
    kind = e.kind();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  g_count_allocs = false;
  INFO(err);
  CHECK(kind == Error::Kind::Format);
  CHECK_THAT(err, Catch::Contains("llama.block_count") && Catch::Contains("1048576"));
  // The file's own index (48 tensors, 19 keys) is all that is allocated; 1M layers would be 300 MB.
  CHECK(g_largest_alloc.load() < (size_t{1} << 20));
  CHECK(seconds < 0.5);
  // One layer more than the file has: refused the same way, naming the key.
  const auto six = stories_with([](gguf::Writer& w) { w.set("llama.block_count", uint32_t{6}); });
  CHECK_THAT(error_of(six), Catch::Contains("llama.block_count") && Catch::Contains("48 tensors"));
}

// ---- 6. RoPE scaling factors ------------------------------------------------------------------------

TEST_CASE("a linear RoPE scaling factor of 0, below 0 or NaN is refused naming the key", "[engine][hostile]") {
  auto with_factor = [](const std::string& key, float factor, bool linear) {
    return stories_with([&](gguf::Writer& w) {
      if (linear) w.set("llama.rope.scaling.type", std::string("linear"));
      w.set(key, factor);
    });
  };
  for (const std::string key : {"llama.rope.scaling.factor", "llama.rope.scale_linear"}) {
    for (float bad : {0.0f, -2.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      INFO(key << " = " << bad);
      const auto bytes = with_factor(key, bad, true);
      CHECK(kind_of(bytes) == Error::Kind::Format);
      CHECK_THAT(error_of(bytes), Catch::Contains("'" + key + "'"));
    }
    // Without a type key a negative or NaN factor is refused too (0 there means unset, as in
    // llama.cpp).
    CHECK(kind_of(with_factor(key, -1.0f, false)) == Error::Kind::Format);
    CHECK(kind_of(with_factor(key, std::numeric_limits<float>::quiet_NaN(), false)) == Error::Kind::Format);
    CHECK(Model(gguf::File::parse(with_factor(key, 0.0f, false))).hparams().rope_freq_scale == 1.0f);
    CHECK(Model(gguf::File::parse(with_factor(key, 2.0f, true))).hparams().rope_freq_scale == 0.5f);
  }
}

// ---- 4. File text with escape sequences never reaches a message or a terminal raw --------------------

TEST_CASE("escape sequences from the file are escaped in every message", "[engine][hostile]") {
  const std::string esc = "\x1b[2J\x1b]0;owned\x07";
  // GGUF reader: key names and tensor names.
  {
    // Raw file with a duplicated escape-laden key.
    std::vector<uint8_t> raw = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    auto u64 = [&](uint64_t x) { for (int i = 0; i < 8; ++i) raw.push_back(uint8_t(x >> (8 * i))); };
    auto u32 = [&](uint32_t x) { for (int i = 0; i < 4; ++i) raw.push_back(uint8_t(x >> (8 * i))); };
    auto str = [&](const std::string& s) { u64(s.size()); raw.insert(raw.end(), s.begin(), s.end()); };
    u64(0);
    u64(2);
    for (int i = 0; i < 2; ++i) {
      str(esc + "key");
      u32(4);
      u32(7);
    }
    try {
      gguf::File::parse(raw);
      FAIL("duplicate key accepted");
    } catch (const gguf::GgufError& e) {
      INFO(e.what());
      CHECK_FALSE(has_esc(e.what()));
      CHECK_THAT(e.what(), Catch::Contains("\\x1b[2J"));
    }
    // A tensor whose data runs past the end of the file.
    raw.assign({'G', 'G', 'U', 'F', 3, 0, 0, 0});
    u64(1);
    u64(0);
    str(esc + "tensor");
    u32(1);
    u64(1024);
    u32(0);
    u64(0);
    while (raw.size() % 32) raw.push_back(0);
    raw.resize(raw.size() + 64, 0);
    try {
      gguf::File::parse(raw);
      FAIL("tensor past the end accepted");
    } catch (const gguf::GgufError& e) {
      INFO(e.what());
      CHECK_FALSE(has_esc(e.what()));
      CHECK_THAT(e.what(), Catch::Contains("tensor '\\x1b[2J"));
    }
  }
  // Architecture, RoPE scaling type.
  CHECK_FALSE(has_esc(error_of(stories_with([&](gguf::Writer& w) { w.set("general.architecture", esc); }))));
  const std::string scaling = error_of(stories_with([&](gguf::Writer& w) { w.set("llama.rope.scaling.type", esc); }));
  CHECK_THAT(scaling, Catch::Contains("RoPE scaling"));
  CHECK_FALSE(has_esc(scaling));
  // Chat template.
  try {
    resolve_chat_format(esc + "{% for m in messages %}", "");
    FAIL("template accepted");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK_FALSE(has_esc(e.what()));
  }
  // Tokenizer: model name, pre-tokenizer, token text.
  auto tok_error = [](Vocab v) -> std::string {
    try {
      Tokenizer t(std::move(v));
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  Vocab v;
  v.tokens = {"<unk>", "<s>", "</s>", "a"};
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.model = esc;
  CHECK_FALSE(has_esc(tok_error(v)));
  v.model = "gpt2";
  v.pre = esc;
  CHECK_FALSE(has_esc(tok_error(v)));
  v.model = "llama";
  v.pre = "";
  v.tokens[3] = esc;
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control, TokenType::Byte};
  const std::string byte_err = tok_error(v);
  CHECK_THAT(byte_err, Catch::Contains("BYTE"));
  CHECK_FALSE(has_esc(byte_err));
  // Through the file: tokenizer.ggml.model and .pre.
  auto vocab_error = [](const std::vector<uint8_t>& bytes) -> std::string {
    try {
      Tokenizer::from_gguf(gguf::File::parse(bytes));
    } catch (const std::exception& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string model_err = vocab_error(stories_with([&](gguf::Writer& w) { w.set("tokenizer.ggml.model", esc); }));
  CHECK_THAT(model_err, Catch::Contains("unsupported tokenizer model"));
  CHECK_FALSE(has_esc(model_err));
  const std::string pre_err = vocab_error(stories_with([&](gguf::Writer& w) {
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", esc);
  }));
  CHECK_THAT(pre_err, Catch::Contains("pre-tokenizer"));
  CHECK_FALSE(has_esc(pre_err));
}

TEST_CASE("edgellm-gguf and edgellm-tokenize escape file text on the terminal", "[engine][hostile][tools]") {
  const std::string esc = "\x1b[31m";
  const std::string c1 = "\xc2\x9b" "31m";  // U+009B, the 8-bit CSI
  const std::string path = tmp_path("escapes.gguf");
  write_bytes(path, stories_with([&](gguf::Writer& w) {
    w.set("general.name", esc + "name" + c1);
    w.set(esc + "evil.key" + c1, esc + "value" + c1);
    w.set("tokenizer.chat_template", esc + "template");
  }));
  for (const std::string flags : {"", " --full", " --json"}) {
    const Run r = run(kBin + "/edgellm-gguf " + quoted(path) + flags);
    INFO("flags '" << flags << "': " << r.out.substr(0, 2000));
    CHECK(r.rc == 0);
    CHECK_FALSE(has_esc(r.out));
    CHECK(r.out.find("\xc2\x9b") == std::string::npos);
    CHECK(r.out.find("\x9b") == std::string::npos);
    CHECK_THAT(r.out, Catch::Contains("evil.key"));
  }
  // Tensor names too (and an error message quoting one).
  {
    std::vector<uint8_t> raw = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    auto u64 = [&](uint64_t x) { for (int i = 0; i < 8; ++i) raw.push_back(uint8_t(x >> (8 * i))); };
    auto u32 = [&](uint32_t x) { for (int i = 0; i < 4; ++i) raw.push_back(uint8_t(x >> (8 * i))); };
    auto str = [&](const std::string& s) { u64(s.size()); raw.insert(raw.end(), s.begin(), s.end()); };
    u64(1);
    u64(0);
    str(esc + "tensor");
    u32(1);
    u64(8);
    u32(0);
    u64(0);
    while (raw.size() % 32) raw.push_back(0);
    const std::string ok_path = tmp_path("escaped-tensor.gguf");
    std::vector<uint8_t> good = raw;
    good.resize(good.size() + 32, 0);
    write_bytes(ok_path, good);
    const Run listed = run(kBin + "/edgellm-gguf " + quoted(ok_path));
    INFO(listed.out);
    CHECK(listed.rc == 0);
    CHECK_THAT(listed.out, Catch::Contains("tensor"));
    CHECK_FALSE(has_esc(listed.out));
    write_bytes(ok_path, raw);  // data missing
    const Run failed = run(kBin + "/edgellm-gguf " + quoted(ok_path));
    INFO(failed.out);
    CHECK(failed.rc == 1);
    CHECK_FALSE(has_esc(failed.out));
    std::filesystem::remove(ok_path);
  }
  // edgellm-tokenize: the byte token <0x1B> is the raw ESC byte.
  const Run tok = run(kBin + "/edgellm-tokenize -m " + quoted(kStories) + " -p " + quoted(esc + "hi"));
  INFO(tok.out);
  CHECK(tok.rc == 0);
  CHECK_FALSE(has_esc(tok.out));
  CHECK_THAT(tok.out, Catch::Contains("\\x1b"));
  std::filesystem::remove(path);
}
