// The C API (edgellm.h) and the C++ wrapper (edgellm.hpp) on the real stories260K model: bad
// arguments, tokenizer round trips, logits against the reference file, greedy ids against the known
// ids, rewind, stop strings, cancel, perf counters, logging. Expected values come from
// ../shared/models or from the library computed at run time another way.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "edgellm/edgellm.h"
#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;
const std::string kStories = kModels + "/stories260K.gguf";

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  std::vector<float> v;
  float x;
  while (f >> x) v.push_back(x);
  return v;
}

std::vector<int32_t> read_ids(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  std::vector<int32_t> v;
  int32_t x;
  while (f >> x) v.push_back(x);
  return v;
}

std::string last_error() { return edgellm_last_error(); }

// A struct the library fills in, with its struct_size set (the ABI rule in edgellm.h).
template <class T>
T sized() {
  T t{};
  t.struct_size = sizeof t;
  return t;
}

struct Loaded {
  edgellm_model* model = nullptr;
  edgellm_context* ctx = nullptr;
  Loaded(int32_t n_ctx = 256, bool logits_all = false, edgellm_kv_type kv = EDGELLM_KV_F16) {
    REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &model) == EDGELLM_OK);
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    cp.logits_all = logits_all;
    cp.kv_type = kv;
    REQUIRE(edgellm_context_create(model, &cp, &ctx) == EDGELLM_OK);
  }
  ~Loaded() {
    edgellm_context_free(ctx);
    edgellm_model_free(model);
  }
};

struct Collected {
  std::string text;
  std::vector<edgellm_token> tokens;
  int calls = 0;
};

bool collect(const char* text, size_t length, edgellm_token token, void* user) {
  auto* c = static_cast<Collected*>(user);
  c->text.append(text, length);
  c->tokens.push_back(token);
  ++c->calls;
  return true;
}

edgellm_sampler* greedy_sampler(const edgellm_model* m) {
  edgellm_sampler_params sp = edgellm_sampler_default_params();
  sp.temperature = 0;
  edgellm_sampler* s = nullptr;
  REQUIRE(edgellm_sampler_create(m, &sp, &s) == EDGELLM_OK);
  return s;
}

std::vector<edgellm_token> bos_only(edgellm_model* m) {
  edgellm_token t[4];
  int32_t n = 0;
  REQUIRE(edgellm_tokenize(m, "", 0, true, false, t, 4, &n) == EDGELLM_OK);
  return {t, t + n};
}

}  // namespace

TEST_CASE("bad model arguments give a status and a message", "[api]") {
  edgellm_model* m = reinterpret_cast<edgellm_model*>(0x1);
  CHECK(edgellm_model_load(nullptr, nullptr, &m) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(m == nullptr);
  CHECK(last_error().find("edgellm_model_load") != std::string::npos);
  CHECK(edgellm_model_load(kStories.c_str(), nullptr, nullptr) == EDGELLM_ERR_INVALID_ARGUMENT);

  const std::string missing = std::string(EDGELLM_TEST_TMP) + "/no-such-model.gguf";
  CHECK(edgellm_model_load(missing.c_str(), nullptr, &m) == EDGELLM_ERR_IO);
  CHECK(last_error().find("no-such-model.gguf") != std::string::npos);

  const std::string text_file = std::string(EDGELLM_TEST_TMP) + "/not-a-model.gguf";
  std::ofstream(text_file) << "this is not a GGUF file, just text long enough to hold a header\n";
  CHECK(edgellm_model_load(text_file.c_str(), nullptr, &m) == EDGELLM_ERR_FORMAT);
  CHECK(m == nullptr);
  CHECK_FALSE(last_error().empty());

  edgellm_model_info info = sized<edgellm_model_info>();
  CHECK(edgellm_model_get_info(nullptr, &info) == EDGELLM_ERR_INVALID_ARGUMENT);
  edgellm_model_free(nullptr);
  edgellm_context_free(nullptr);
  edgellm_sampler_free(nullptr);
  CHECK(edgellm_n_past(nullptr) == -1);
  CHECK(std::string(edgellm_status_string(EDGELLM_ERR_CONTEXT_FULL)).size() > 0);
  CHECK(std::string(edgellm_status_string(static_cast<edgellm_status>(1234))).size() > 0);
}

TEST_CASE("a progress callback sees the load and can cancel it", "[api]") {
  struct Seen {
    int calls = 0;
    float last = -1;
    bool stop = false;
  } seen;
  edgellm_model_params mp = edgellm_model_default_params();
  mp.progress_user_data = &seen;
  mp.progress_callback = [](float p, void* u) {
    auto* s = static_cast<Seen*>(u);
    ++s->calls;
    s->last = p;
    return !s->stop;
  };
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), &mp, &m) == EDGELLM_OK);
  CHECK(seen.calls >= 1);
  CHECK(seen.last == 1.0f);
  edgellm_model_free(m);

  seen = Seen{};
  seen.stop = true;
  CHECK(edgellm_model_load(kStories.c_str(), &mp, &m) == EDGELLM_ERR_CANCELLED);
  CHECK(m == nullptr);
  CHECK(seen.calls == 1);
}

TEST_CASE("model info matches the file", "[api]") {
  Loaded l;
  edgellm_model_info info = sized<edgellm_model_info>();
  REQUIRE(edgellm_model_get_info(l.model, &info) == EDGELLM_OK);
  auto file = edgellm::gguf::File::open(kStories);
  uint64_t bytes = 0, params = 0;
  for (const auto& t : file.tensors()) {
    bytes += t.n_bytes;
    params += t.n_elements();
  }
  CHECK(info.size_bytes == bytes);
  CHECK(info.n_params == params);
  CHECK(info.n_vocab == static_cast<int32_t>(file.get_array<std::string>("tokenizer.ggml.tokens").size()));
  CHECK(info.n_layer == static_cast<int32_t>(file.get<uint32_t>("llama.block_count")));
  CHECK(info.n_embd == static_cast<int32_t>(file.get<uint32_t>("llama.embedding_length")));
  CHECK(info.n_ctx_train == static_cast<int32_t>(file.get<uint32_t>("llama.context_length")));
  CHECK(info.n_head == static_cast<int32_t>(file.get<uint32_t>("llama.attention.head_count")));
  CHECK(info.n_head_kv == static_cast<int32_t>(file.get<uint32_t>("llama.attention.head_count_kv")));
  CHECK(info.bos == 1);  // the file's token types: <s> = 1, </s> = 2 (SOURCES.md)
  CHECK(info.eos == 2);
  CHECK(info.add_bos);
  CHECK_FALSE(info.has_chat_template);
  CHECK(edgellm_model_chat_template(l.model) == nullptr);
  CHECK(std::string(info.architecture) == "llama");
  CHECK(std::string(info.description).rfind("llama ", 0) == 0);
  CHECK(info.load_ms > 0);
  // Untied output: a decoded token reads every weight but one row of the embedding table.
  const auto* embd = file.find_tensor("token_embd.weight");
  REQUIRE(embd);
  CHECK(info.decode_bytes == bytes - embd->n_bytes + embd->n_bytes / embd->ne[1]);
  CHECK(edgellm_token_is_eog(l.model, info.eos));
  CHECK_FALSE(edgellm_token_is_eog(l.model, 100));
}

TEST_CASE("bad context arguments give a status and a message", "[api]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  edgellm_context* c = nullptr;
  edgellm_context_params cp = edgellm_context_default_params();
  CHECK(edgellm_context_create(nullptr, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  cp.n_ctx = 0;
  CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("n_ctx") != std::string::npos);
  cp = edgellm_context_default_params();
  cp.n_threads = -1;
  CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("n_threads") != std::string::npos);
  cp.n_threads = 5000;
  CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("n_threads") != std::string::npos);
  cp = edgellm_context_default_params();
  cp.kv_type = static_cast<edgellm_kv_type>(7);
  CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(c == nullptr);
  cp = edgellm_context_default_params();
  cp.n_threads = 0;  // physical cores
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  CHECK(edgellm_n_threads(c) >= 1);
  edgellm_context_free(c);
  edgellm_model_free(m);
}

TEST_CASE("the backend is chosen by name: cpu and auto run, other names are refused", "[api]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  CHECK(std::string(edgellm_context_default_params().backend) == "auto");
  const edgellm_token bos = 1;
  std::vector<std::vector<float>> logits;
  std::vector<std::string> used;
  for (const char* name : {"cpu", "auto", static_cast<const char*>(nullptr)}) {
    INFO("backend " << (name ? name : "NULL"));
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    cp.backend = name;
    edgellm_context* c = nullptr;
    REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
    used.emplace_back(edgellm_backend_name(c));
    REQUIRE(edgellm_eval(c, &bos, 1) == EDGELLM_OK);
    const float* p = edgellm_get_logits(c);
    REQUIRE(p);
    logits.emplace_back(p, p + 512);
    edgellm_context_free(c);
  }
  CHECK(used[0] == "cpu");
  CHECK(used[1] == used[2]);
  // auto is the CPU but on an Apple build with a GPU (tests/metal compares Metal with the CPU).
  if (used[1] == "cpu") {
    CHECK(logits[0] == logits[1]);
    CHECK(logits[0] == logits[2]);
  } else {
    CHECK(used[1] == "metal");
  }
  CHECK(std::string(edgellm_backend_name(nullptr)).empty());
  edgellm_model_free(m);
}

TEST_CASE("backend 'metal' runs where the build has it and is refused as unsupported elsewhere", "[api]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 16;
  cp.backend = "metal";
  edgellm_context* c = nullptr;
  const edgellm_status st = edgellm_context_create(m, &cp, &c);
  // This test links only the public library, which does not say whether it has Metal: either
  // outcome is checked in full (tests/metal checks the results of the first against the CPU).
  if (st == EDGELLM_OK) {
    CHECK(std::string(edgellm_backend_name(c)) == "metal");
    const edgellm_token bos = 1;
    CHECK(edgellm_eval(c, &bos, 1) == EDGELLM_OK);
    CHECK(edgellm_get_logits(c) != nullptr);
    edgellm_context_free(c);
  } else {
    CHECK(st == EDGELLM_ERR_UNSUPPORTED);
    CHECK(c == nullptr);
    CHECK(last_error().find("no Metal backend") != std::string::npos);
    CHECK(last_error().find("-DEDGELLM_METAL=ON") != std::string::npos);
  }
  edgellm_model_free(m);
}

TEST_CASE("an unknown backend name is refused with the name in the message", "[api]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  for (const char* bad : {"Metal", "", "CPU"}) {
    INFO("backend '" << bad << "'");
    edgellm_context_params cp = edgellm_context_default_params();
    cp.backend = bad;
    edgellm_context* c = reinterpret_cast<edgellm_context*>(0x1);
    CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
    CHECK(c == nullptr);
    if (c) edgellm_context_free(c);
    std::string quoted = "'";
    quoted += bad;
    quoted += "'";
    CHECK(last_error().find("backend") != std::string::npos);
    CHECK(last_error().find(quoted) != std::string::npos);
  }
  edgellm_model_free(m);
}

// The context parameters as an app built against an older edgellm.h, without `backend`, has them.
struct OldContextParams {
  size_t struct_size;
  int32_t n_ctx;
  int32_t n_threads;
  edgellm_kv_type kv_type;
  bool logits_all;
};
static_assert(offsetof(edgellm_context_params, backend) >= sizeof(OldContextParams),
              "a new field starts after the old struct's end (the ABI rule)");

TEST_CASE("structs follow the struct_size rule: old sizes work, 0 and newer sizes are refused", "[api]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);

  // _params_init writes only the caller's struct_size bytes.
  unsigned char raw[sizeof(edgellm_context_params) + 16];
  std::memset(raw, 0xAB, sizeof raw);
  edgellm_context_params_init(reinterpret_cast<edgellm_context_params*>(raw), sizeof(OldContextParams));
  OldContextParams old;
  std::memcpy(&old, raw, sizeof old);
  CHECK(old.struct_size == sizeof(OldContextParams));
  CHECK(old.n_ctx == 2048);
  CHECK(old.n_threads == 0);
  for (size_t i = sizeof(OldContextParams); i < sizeof raw; ++i) CHECK(raw[i] == 0xAB);

  // An old app's struct: its fields are used, the one it lacks (backend) takes its default.
  old.n_ctx = 24;
  old.n_threads = 1;
  edgellm_context* c = nullptr;
  REQUIRE(edgellm_context_create(m, reinterpret_cast<const edgellm_context_params*>(&old), &c) == EDGELLM_OK);
  CHECK(edgellm_n_ctx(c) == 24);
  CHECK(edgellm_n_threads(c) == 1);

  // Output structs: only the caller's bytes are written.
  struct OldPerf {
    size_t struct_size;
    double load_ms;
  };
  unsigned char perf_raw[sizeof(edgellm_perf)];
  std::memset(perf_raw, 0xCD, sizeof perf_raw);
  const size_t old_perf_size = sizeof(OldPerf);
  std::memcpy(perf_raw, &old_perf_size, sizeof old_perf_size);
  REQUIRE(edgellm_get_perf(c, reinterpret_cast<edgellm_perf*>(perf_raw)) == EDGELLM_OK);
  OldPerf op;
  std::memcpy(&op, perf_raw, sizeof op);
  CHECK(op.struct_size == sizeof(OldPerf));
  CHECK(op.load_ms > 0);
  for (size_t i = sizeof(OldPerf); i < sizeof perf_raw; ++i) CHECK(perf_raw[i] == 0xCD);
  edgellm_context_free(c);

  // A struct never initialized (struct_size 0), and one from a newer header, are refused.
  edgellm_context_params cp = edgellm_context_default_params();
  cp.struct_size = 0;
  c = nullptr;
  CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("edgellm_context_params.struct_size is 0") != std::string::npos);
  cp.struct_size = sizeof cp + 8;
  CHECK(edgellm_context_create(m, &cp, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("newer edgellm.h") != std::string::npos);
  CHECK(c == nullptr);
  edgellm_model_info info{};
  CHECK(edgellm_model_get_info(m, &info) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("edgellm_model_info.struct_size") != std::string::npos);
  edgellm_sampler_params sp = edgellm_sampler_default_params();
  sp.struct_size = 0;
  edgellm_sampler* s = nullptr;
  CHECK(edgellm_sampler_create(m, &sp, &s) == EDGELLM_ERR_INVALID_ARGUMENT);
  edgellm_model_params mp = edgellm_model_default_params();
  mp.struct_size = 0;
  edgellm_model* m2 = nullptr;
  CHECK(edgellm_model_load(kStories.c_str(), &mp, &m2) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(m2 == nullptr);

  // generate: a bad params or result struct_size is refused before anything runs.
  cp = edgellm_context_default_params();
  cp.n_ctx = 16;
  cp.n_threads = 1;
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  s = greedy_sampler(m);
  const edgellm_token bos = 1;
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = 2;
  edgellm_generate_result r{};
  CHECK(edgellm_generate(c, s, &bos, 1, &gp, &r) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_n_past(c) == 0);
  gp.struct_size = 0;
  r = sized<edgellm_generate_result>();
  CHECK(edgellm_generate(c, s, &bos, 1, &gp, &r) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_n_past(c) == 0);
  gp = edgellm_generate_default_params();
  gp.n_predict = 2;
  REQUIRE(edgellm_generate(c, s, &bos, 1, &gp, &r) == EDGELLM_OK);
  CHECK(r.n_generated == 2);
  CHECK(r.struct_size == sizeof r);
  edgellm_sampler_free(s);
  edgellm_context_free(c);
  edgellm_model_free(m);
}

// The model parameters as an app built against an edgellm.h without `vocab_only` has them.
struct OldModelParams {
  size_t struct_size;
  bool use_mmap;
  edgellm_progress_callback progress_callback;
  void* progress_user_data;
};
static_assert(offsetof(edgellm_model_params, vocab_only) >= sizeof(OldModelParams),
              "a new field starts after the old struct's end (the ABI rule)");

TEST_CASE("vocab_only: a vocabulary without weights tokenizes; a context of it is refused", "[api]") {
  const std::string vocab = kModels + "/ggml-vocab-llama-spm.gguf";
  edgellm_model* m = nullptr;
  // Loaded as a model, the file lacks the weights.
  CHECK(edgellm_model_load(vocab.c_str(), nullptr, &m) != EDGELLM_OK);
  CHECK(last_error().find("token_embd.weight") != std::string::npos);
  CHECK(m == nullptr);

  edgellm_model_params mp = edgellm_model_default_params();
  CHECK_FALSE(mp.vocab_only);
  mp.vocab_only = true;
  REQUIRE(edgellm_model_load(vocab.c_str(), &mp, &m) == EDGELLM_OK);
  edgellm_token t[8];
  int32_t n = 0;
  REQUIRE(edgellm_tokenize(m, "Hello world", -1, true, false, t, 8, &n) == EDGELLM_OK);
  CHECK(std::vector<edgellm_token>(t, t + n) == std::vector<edgellm_token>{1, 15043, 3186});
  char buf[64];
  size_t len = 0;
  REQUIRE(edgellm_detokenize(m, t + 1, n - 1, false, buf, sizeof buf, &len) == EDGELLM_OK);
  CHECK(std::string(buf, len) == "Hello world");  // without BOS, the space prefix goes
  auto info = sized<edgellm_model_info>();
  REQUIRE(edgellm_model_get_info(m, &info) == EDGELLM_OK);
  CHECK(info.n_vocab == 32000);
  CHECK(info.bos == 1);
  CHECK(info.eos == 2);
  CHECK(info.add_bos);
  CHECK(info.n_layer == 0);
  CHECK(std::string(info.description) == "vocabulary only");
  CHECK(edgellm_token_is_eog(m, 2));

  edgellm_context* c = nullptr;
  CHECK(edgellm_context_create(m, nullptr, &c) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("vocab_only") != std::string::npos);
  CHECK(c == nullptr);
  edgellm_model_free(m);

  // A full model loaded vocab_only tokenizes as the full load does; the C++ wrapper's
  // Model::vocab_only is the same, and its Context throws.
  const edgellm::Model full(kStories);
  edgellm::Model words = edgellm::Model::vocab_only(kStories);
  CHECK(words.tokenize("Once upon a time, a llama", true) == full.tokenize("Once upon a time, a llama", true));
  CHECK(words.info().n_vocab == full.info().n_vocab);
  CHECK_THROWS_AS(edgellm::Context(words), edgellm::Exception);

  // An app built before vocab_only: its struct loads the full model.
  OldModelParams old{sizeof(OldModelParams), true, nullptr, nullptr};
  REQUIRE(edgellm_model_load(kStories.c_str(), reinterpret_cast<const edgellm_model_params*>(&old), &m) ==
          EDGELLM_OK);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 16;
  cp.n_threads = 1;
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  edgellm_context_free(c);
  edgellm_model_free(m);
}

TEST_CASE("bad eval arguments are refused and change nothing", "[api]") {
  Loaded l(16);
  const edgellm_token ok[2] = {1, 100};
  CHECK(edgellm_get_logits(l.ctx) == nullptr);  // nothing evaluated yet
  CHECK_FALSE(last_error().empty());
  CHECK(edgellm_eval(nullptr, ok, 2) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_eval(l.ctx, nullptr, 2) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_eval(l.ctx, ok, 0) == EDGELLM_ERR_INVALID_ARGUMENT);
  const edgellm_token bad[2] = {1, 512};
  CHECK(edgellm_eval(l.ctx, bad, 2) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("512") != std::string::npos);
  const edgellm_token negative[1] = {-3};
  CHECK(edgellm_eval(l.ctx, negative, 1) == EDGELLM_ERR_INVALID_ARGUMENT);
  std::vector<edgellm_token> too_long(17, 100);
  CHECK(edgellm_eval(l.ctx, too_long.data(), 17) == EDGELLM_ERR_CONTEXT_FULL);
  CHECK(last_error().find("17") != std::string::npos);
  CHECK(edgellm_n_past(l.ctx) == 0);
  REQUIRE(edgellm_eval(l.ctx, ok, 2) == EDGELLM_OK);
  CHECK(edgellm_rewind(l.ctx, 3) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_rewind(l.ctx, -1) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_get_logits_ith(l.ctx, 0) == nullptr);  // not logits_all
  CHECK(edgellm_get_logits_ith(l.ctx, 5) == nullptr);
  CHECK(edgellm_get_logits_ith(l.ctx, -1) != nullptr);
  CHECK(edgellm_n_past(l.ctx) == 2);
}

TEST_CASE("the last error is per thread", "[api][tsan]") {
  CHECK(edgellm_eval(nullptr, nullptr, 1) == EDGELLM_ERR_INVALID_ARGUMENT);
  const std::string mine = last_error();
  std::string theirs;
  std::thread([&] {
    theirs = last_error();
    edgellm_model* m = nullptr;
    edgellm_model_load(nullptr, nullptr, &m);
  }).join();
  CHECK(theirs.empty());
  CHECK(last_error() == mine);
}

TEST_CASE("tokenize: buffers, size query, round trip, token ids", "[api]") {
  Loaded l;
  const std::string text = "Once upon a time, there was a little girl.";
  int32_t n = 0;
  CHECK(edgellm_tokenize(l.model, text.c_str(), -1, true, false, nullptr, 0, &n) == EDGELLM_OK);
  REQUIRE(n > 2);
  std::vector<edgellm_token> small(static_cast<size_t>(n - 1));
  int32_t needed = 0;
  CHECK(edgellm_tokenize(l.model, text.c_str(), -1, true, false, small.data(), n - 1, &needed) ==
        EDGELLM_ERR_BUFFER_TOO_SMALL);
  CHECK(needed == n);
  std::vector<edgellm_token> tokens(static_cast<size_t>(n));
  REQUIRE(edgellm_tokenize(l.model, text.c_str(), -1, true, false, tokens.data(), n, &n) == EDGELLM_OK);
  CHECK(tokens[0] == 1);  // BOS, as the metadata (llama.cpp's default for SPM) asks

  // The text of the tokens after BOS is the text again.
  std::vector<char> buf(256);
  size_t len = 0;
  REQUIRE(edgellm_detokenize(l.model, tokens.data() + 1, n - 1, false, buf.data(), buf.size(), &len) == EDGELLM_OK);
  CHECK(std::string(buf.data(), len) == text);
  CHECK(edgellm_detokenize(l.model, tokens.data() + 1, n - 1, false, buf.data(), 3, &len) ==
        EDGELLM_ERR_BUFFER_TOO_SMALL);
  CHECK(len == text.size());

  // Pieces concatenate to the text with SentencePiece's leading space.
  std::string joined;
  for (int32_t i = 1; i < n; ++i) {
    REQUIRE(edgellm_token_to_piece(l.model, tokens[static_cast<size_t>(i)], false, buf.data(), buf.size(), &len) ==
            EDGELLM_OK);
    joined.append(buf.data(), len);
  }
  CHECK(joined == " " + text);
  CHECK(edgellm_token_to_piece(l.model, 512, false, buf.data(), buf.size(), &len) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("512") != std::string::npos);
  const edgellm_token with_bad[2] = {100, -7};
  CHECK(edgellm_detokenize(l.model, with_bad, 2, false, buf.data(), buf.size(), &len) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("-7") != std::string::npos);
  CHECK(edgellm_detokenize(l.model, tokens.data(), -1, false, buf.data(), buf.size(), &len) ==
        EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_token_to_piece(l.model, 1, true, buf.data(), buf.size(), &len) == EDGELLM_OK);
  CHECK(std::string(buf.data(), len) == "<s>");
  CHECK(edgellm_tokenize(l.model, nullptr, 3, true, false, tokens.data(), n, &n) == EDGELLM_ERR_INVALID_ARGUMENT);

  // parse_special turns "<s>" into BOS.
  edgellm_token special[8];
  int32_t ns = 0;
  REQUIRE(edgellm_tokenize(l.model, "<s>", -1, false, true, special, 8, &ns) == EDGELLM_OK);
  CHECK(ns == 1);
  CHECK(special[0] == 1);
}

TEST_CASE("logits after BOS match the reference forward pass", "[api]") {
  const std::vector<float> want = read_floats(kModels + "/stories260K.logits-bos-pos0.txt");
  REQUIRE(want.size() == 512);
  // F32 cache: float rounding only. F16 cache: the V row is rounded to half precision (about 1e-3
  // relative), which moves these logits (|x| < 20) by a few thousandths.
  for (auto [kv, tol] : {std::pair{EDGELLM_KV_F32, 1e-3f}, std::pair{EDGELLM_KV_F16, 1e-2f}}) {
    Loaded l(256, false, kv);
    const edgellm_token bos = 1;
    REQUIRE(edgellm_eval(l.ctx, &bos, 1) == EDGELLM_OK);
    const float* got = edgellm_get_logits(l.ctx);
    REQUIRE(got);
    float worst = 0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    INFO("kv type " << kv);
    CHECK(worst < tol);
  }
}

TEST_CASE("greedy generation gives the known ids and their text", "[api]") {
  Loaded l;
  const std::vector<int32_t> want = read_ids(kModels + "/stories260K.greedy-t0-200.ids");
  REQUIRE(want.size() == 200);
  const int n = 60;
  edgellm_sampler* s = greedy_sampler(l.model);

  // Token by token with the sampler.
  std::vector<edgellm_token> prompt = bos_only(l.model);
  REQUIRE(edgellm_eval(l.ctx, prompt.data(), static_cast<int32_t>(prompt.size())) == EDGELLM_OK);
  std::vector<int32_t> got;
  for (int i = 0; i < n; ++i) {
    edgellm_token t = -1;
    REQUIRE(edgellm_sampler_sample(s, l.ctx, -1, &t) == EDGELLM_OK);
    REQUIRE(edgellm_sampler_accept(s, t) == EDGELLM_OK);
    got.push_back(t);
    REQUIRE(edgellm_eval(l.ctx, &t, 1) == EDGELLM_OK);
  }
  CHECK(got == std::vector<int32_t>(want.begin(), want.begin() + n));

  // edgellm_generate streams the same tokens' text.
  edgellm_clear(l.ctx);
  edgellm_sampler_reset(s);
  Collected c;
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = n;
  gp.callback = collect;
  gp.user_data = &c;
  edgellm_generate_result r = sized<edgellm_generate_result>();
  REQUIRE(edgellm_generate(l.ctx, s, prompt.data(), static_cast<int32_t>(prompt.size()), &gp, &r) == EDGELLM_OK);
  CHECK(r.stop_reason == EDGELLM_STOP_N_PREDICT);
  CHECK(r.n_generated == n);
  CHECK(r.n_prompt == 1);
  CHECK(edgellm_n_past(l.ctx) == 1 + n - 1);  // the last sampled token is not evaluated
  std::string pieces;
  std::vector<char> buf(64);
  for (int i = 0; i < n; ++i) {
    size_t len = 0;
    REQUIRE(edgellm_token_to_piece(l.model, want[static_cast<size_t>(i)], false, buf.data(), buf.size(), &len) ==
            EDGELLM_OK);
    pieces.append(buf.data(), len);
  }
  CHECK(c.text == pieces);
  edgellm_sampler_free(s);
}

TEST_CASE("rewind and batched prefill agree with token-by-token decode", "[api]") {
  Loaded l(64, /*logits_all=*/true);
  const std::vector<edgellm_token> seq = {1, 403, 385, 410, 317, 407, 100, 200};
  // Token by token: logits after each.
  std::vector<std::vector<float>> step;
  for (edgellm_token t : seq) {
    REQUIRE(edgellm_eval(l.ctx, &t, 1) == EDGELLM_OK);
    const float* p = edgellm_get_logits(l.ctx);
    step.emplace_back(p, p + 512);
  }
  auto close = [](const float* a, const std::vector<float>& b, float tol) {
    float worst = 0;
    for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst < tol;
  };
  // Rewind to 5 and run the rest again: the same logits.
  REQUIRE(edgellm_rewind(l.ctx, 5) == EDGELLM_OK);
  CHECK(edgellm_n_past(l.ctx) == 5);
  REQUIRE(edgellm_eval(l.ctx, seq.data() + 5, 3) == EDGELLM_OK);
  for (int i = 0; i < 3; ++i) CHECK(close(edgellm_get_logits_ith(l.ctx, i), step[static_cast<size_t>(5 + i)], 1e-3f));
  CHECK(close(edgellm_get_logits_ith(l.ctx, -1), step[7], 1e-3f));
  // One batch from empty: logits of every position.
  edgellm_clear(l.ctx);
  CHECK(edgellm_n_past(l.ctx) == 0);
  REQUIRE(edgellm_eval(l.ctx, seq.data(), static_cast<int32_t>(seq.size())) == EDGELLM_OK);
  for (size_t i = 0; i < seq.size(); ++i) CHECK(close(edgellm_get_logits_ith(l.ctx, static_cast<int32_t>(i)), step[i], 1e-3f));
}

TEST_CASE("stop strings end generation and are not emitted", "[api]") {
  Loaded l;
  edgellm_sampler* s = greedy_sampler(l.model);
  const std::vector<edgellm_token> prompt = bos_only(l.model);
  Collected full;
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = 60;
  gp.callback = collect;
  gp.user_data = &full;
  REQUIRE(edgellm_generate(l.ctx, s, prompt.data(), 1, &gp, nullptr) == EDGELLM_OK);
  REQUIRE(full.text.size() > 60);

  // A stop string taken from the middle of that text, spanning a piece boundary or not.
  const std::string stop = full.text.substr(40, 6);
  const size_t at = full.text.find(stop);
  edgellm_clear(l.ctx);
  edgellm_sampler_reset(s);
  Collected cut;
  const char* stops[] = {"never appears in it", stop.c_str()};
  gp.user_data = &cut;
  gp.stop_strings = stops;
  gp.n_stop_strings = 2;
  edgellm_generate_result r = sized<edgellm_generate_result>();
  REQUIRE(edgellm_generate(l.ctx, s, prompt.data(), 1, &gp, &r) == EDGELLM_OK);
  CHECK(r.stop_reason == EDGELLM_STOP_STRING);
  CHECK(cut.text == full.text.substr(0, at));
  CHECK(r.n_generated < 60);

  // The callback can stop it too.
  edgellm_clear(l.ctx);
  int calls = 0;
  gp.stop_strings = nullptr;
  gp.n_stop_strings = 0;
  gp.user_data = &calls;
  gp.callback = [](const char*, size_t, edgellm_token, void* u) { return ++*static_cast<int*>(u) < 3; };
  REQUIRE(edgellm_generate(l.ctx, s, prompt.data(), 1, &gp, &r) == EDGELLM_OK);
  CHECK(r.stop_reason == EDGELLM_STOP_CALLBACK);
  CHECK(calls == 3);
  edgellm_sampler_free(s);
}

TEST_CASE("generation stops when the context is full, and prompts that do not fit are refused", "[api]") {
  Loaded l(12);
  edgellm_sampler* s = greedy_sampler(l.model);
  std::vector<edgellm_token> prompt = {1, 403, 385};
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = -1;
  edgellm_generate_result r = sized<edgellm_generate_result>();
  REQUIRE(edgellm_generate(l.ctx, s, prompt.data(), 3, &gp, &r) == EDGELLM_OK);
  CHECK(r.stop_reason == EDGELLM_STOP_CONTEXT_FULL);
  CHECK(edgellm_n_past(l.ctx) == 12);
  edgellm_clear(l.ctx);
  std::vector<edgellm_token> long_prompt(13, 100);
  CHECK(edgellm_generate(l.ctx, s, long_prompt.data(), 13, &gp, &r) == EDGELLM_ERR_CONTEXT_FULL);
  CHECK(last_error().find("13") != std::string::npos);
  CHECK(edgellm_generate(l.ctx, s, nullptr, 0, &gp, &r) == EDGELLM_ERR_INVALID_ARGUMENT);
  edgellm_sampler_free(s);
}

TEST_CASE("edgellm_cancel from another thread stops generation between tokens", "[api][tsan]") {
  Loaded l;
  edgellm_sampler* s = greedy_sampler(l.model);
  const std::vector<edgellm_token> prompt = bos_only(l.model);
  struct State {
    edgellm_context* ctx;
    int calls = 0;
  } st{l.ctx};
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = 200;
  gp.user_data = &st;
  gp.callback = [](const char*, size_t, edgellm_token, void* u) {
    auto* st = static_cast<State*>(u);
    if (++st->calls == 2) std::thread([c = st->ctx] { edgellm_cancel(c); }).join();
    return true;
  };
  edgellm_generate_result r = sized<edgellm_generate_result>();
  CHECK(edgellm_generate(l.ctx, s, prompt.data(), 1, &gp, &r) == EDGELLM_ERR_CANCELLED);
  CHECK(r.stop_reason == EDGELLM_STOP_CANCELLED);
  CHECK(r.n_generated < 5);
  // The request was consumed: the next call runs to n_predict.
  edgellm_clear(l.ctx);
  gp.callback = nullptr;
  gp.n_predict = 5;
  CHECK(edgellm_generate(l.ctx, s, prompt.data(), 1, &gp, &r) == EDGELLM_OK);
  CHECK(r.n_generated == 5);
  edgellm_sampler_free(s);
}

TEST_CASE("perf counters count prefill, decode and sampling; reset clears them", "[api]") {
  Loaded l;
  edgellm_sampler* s = greedy_sampler(l.model);
  std::vector<edgellm_token> prompt = {1, 403, 385, 410};
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = 10;
  REQUIRE(edgellm_generate(l.ctx, s, prompt.data(), 4, &gp, nullptr) == EDGELLM_OK);
  edgellm_perf p = sized<edgellm_perf>();
  REQUIRE(edgellm_get_perf(l.ctx, &p) == EDGELLM_OK);
  CHECK(p.load_ms > 0);
  CHECK(p.n_prefill_tokens == 4);
  CHECK(p.prefill_ms > 0);
  CHECK(p.n_decode_tokens == 9);
  CHECK(p.decode_ms > 0);
  CHECK(p.n_sample == 10);
  CHECK(p.sample_ms > 0);
  CHECK(p.peak_rss_bytes > 1000000);
  edgellm_reset_perf(l.ctx);
  REQUIRE(edgellm_get_perf(l.ctx, &p) == EDGELLM_OK);
  CHECK(p.n_prefill_tokens == 0);
  CHECK(p.n_decode_tokens == 0);
  CHECK(p.n_sample == 0);
  CHECK(p.prefill_ms == 0);
  CHECK(edgellm_get_perf(nullptr, &p) == EDGELLM_ERR_INVALID_ARGUMENT);
  edgellm_sampler_free(s);
}

TEST_CASE("sampler: checked parameters, seeds reproduce, top-k 1 is greedy", "[api]") {
  Loaded l;
  edgellm_sampler* s = nullptr;
  edgellm_sampler_params sp = edgellm_sampler_default_params();
  sp.top_p = 1.5f;
  CHECK(edgellm_sampler_create(l.model, &sp, &s) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("top_p") != std::string::npos);
  sp = edgellm_sampler_default_params();
  sp.top_k = -2;
  CHECK(edgellm_sampler_create(l.model, &sp, &s) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_sampler_create(nullptr, nullptr, &s) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(s == nullptr);

  const edgellm_token bos = 1;
  REQUIRE(edgellm_eval(l.ctx, &bos, 1) == EDGELLM_OK);
  auto draw = [&](edgellm_sampler_params p, int n) {
    edgellm_sampler* smp = nullptr;
    REQUIRE(edgellm_sampler_create(l.model, &p, &smp) == EDGELLM_OK);
    std::vector<edgellm_token> out;
    for (int i = 0; i < n; ++i) {
      edgellm_token t = -1;
      REQUIRE(edgellm_sampler_sample(smp, l.ctx, -1, &t) == EDGELLM_OK);
      out.push_back(t);
    }
    edgellm_sampler_free(smp);
    return out;
  };
  sp = edgellm_sampler_default_params();
  sp.temperature = 1.5f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.min_p = 0.0f;
  sp.seed = 7;
  CHECK(draw(sp, 30) == draw(sp, 30));
  auto a = draw(sp, 30);
  sp.seed = 8;
  CHECK(a != draw(sp, 30));
  sp.top_k = 1;
  CHECK(draw(sp, 5) == std::vector<edgellm_token>(5, 403));  // the argmax after BOS (reference file)

  edgellm_sampler* g = greedy_sampler(l.model);
  edgellm_token t;
  CHECK(edgellm_sampler_sample(g, nullptr, -1, &t) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_sampler_accept(g, 9999) == EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("9999") != std::string::npos);
  edgellm_sampler_free(g);
}

TEST_CASE("chat template: a named template, and a clear error without one", "[api]") {
  Loaded l;
  const edgellm_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
  std::vector<char> buf(512);
  size_t len = 0;
  REQUIRE(edgellm_chat_apply_template(l.model, "chatml", msgs, 2, true, buf.data(), buf.size(), &len) == EDGELLM_OK);
  CHECK(std::string(buf.data(), len) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(edgellm_chat_apply_template(l.model, nullptr, msgs, 2, true, buf.data(), buf.size(), &len) != EDGELLM_OK);
  CHECK(last_error().find("template") != std::string::npos);
  CHECK(edgellm_chat_apply_template(l.model, "chatml", nullptr, 2, true, buf.data(), buf.size(), &len) ==
        EDGELLM_ERR_INVALID_ARGUMENT);
  CHECK(edgellm_chat_apply_template(l.model, "{{ no known format }}", msgs, 2, true, buf.data(), buf.size(), &len) ==
        EDGELLM_ERR_UNSUPPORTED);
  CHECK(last_error().find("unsupported chat template") != std::string::npos);
  CHECK(edgellm_chat_apply_template(l.model, "chatml", msgs, 2, true, buf.data(), 4, &len) ==
        EDGELLM_ERR_BUFFER_TOO_SMALL);
  CHECK(len > 4);
}

TEST_CASE("logging: silent by default, a callback gets lines, nothing goes to stdout", "[api]") {
  // Point stdout at a file for the whole run.
  const std::string out_path = std::string(EDGELLM_TEST_TMP) + "/api-stdout.txt";
  std::fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  FILE* f = std::fopen(out_path.c_str(), "w");
  REQUIRE(f);
  dup2(fileno(f), STDOUT_FILENO);

  std::vector<std::string> lines;
  edgellm_set_log_callback(
      [](edgellm_log_level, const char* msg, void* u) { static_cast<std::vector<std::string>*>(u)->push_back(msg); },
      EDGELLM_LOG_DEBUG, &lines);
  {
    Loaded l;
    edgellm_sampler* s = greedy_sampler(l.model);
    const edgellm_token bos = 1;
    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.n_predict = 8;
    CHECK(edgellm_generate(l.ctx, s, &bos, 1, &gp, nullptr) == EDGELLM_OK);
    edgellm_sampler_free(s);
  }
  const size_t with_callback = lines.size();
  edgellm_set_log_callback(nullptr, EDGELLM_LOG_DEBUG, nullptr);
  {
    Loaded l;
  }
  std::fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  std::fclose(f);

  CHECK(with_callback > 0);
  CHECK(lines.size() == with_callback);
  std::ifstream in(out_path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str().empty());
}

TEST_CASE("C++ wrapper: RAII handles and exceptions with the status", "[api]") {
  try {
    edgellm::Model bad(std::string(EDGELLM_TEST_TMP) + "/missing.gguf");
    FAIL("no exception");
  } catch (const edgellm::Exception& e) {
    CHECK(e.status() == EDGELLM_ERR_IO);
    CHECK(std::string(e.what()).find("missing.gguf") != std::string::npos);
  }
  edgellm::Model model(kStories);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 64;
  cp.n_threads = 1;
  edgellm::Context ctx(model, cp);
  edgellm::Sampler greedy(model, edgellm::Sampler::greedy());
  std::string text;
  auto r = ctx.generate(greedy, model.tokenize("Once upon a time", true), 10, [&](std::string_view t) {
    text += t;
    return true;
  });
  CHECK(r.n_generated == 10);
  CHECK(!text.empty());
  CHECK(model.detokenize(model.tokenize("Once upon a time", false)) == "Once upon a time");
  CHECK_THROWS_AS(ctx.eval({9999}), edgellm::Exception);
  CHECK_THROWS_AS(ctx.generate(greedy, {1}, 5, [](std::string_view) -> bool { throw std::runtime_error("x"); }),
                  std::runtime_error);
}

// ---- Threads (the "Threads" rules at the top of edgellm.h). Tagged [tsan]: a ThreadSanitizer
// build runs these. Catch2's assertions are not thread-safe: workers only record, the main thread
// checks.

TEST_CASE("one context used from two threads: every call succeeds or is refused as busy", "[api][tsan]") {
  Loaded l(256);
  edgellm_sampler* samplers[2] = {greedy_sampler(l.model), greedy_sampler(l.model)};
  struct Tally {
    int ok = 0, busy = 0, other = 0;  // other: a state the other thread made (no logits, full)
    std::vector<std::string> unexpected;
  } tally[2];
  auto worker = [&](int w) {
    Tally& t = tally[w];
    const edgellm_token prompt[4] = {1, 403, 385, 410};
    auto note = [&](const char* call, edgellm_status s, bool state_error_ok) {
      if (s == EDGELLM_OK) ++t.ok;
      else if (s == EDGELLM_ERR_BUSY && last_error().find("busy") != std::string::npos) ++t.busy;
      else if (state_error_ok && (s == EDGELLM_ERR_CONTEXT_FULL || s == EDGELLM_ERR_INVALID_ARGUMENT)) ++t.other;
      else if (t.unexpected.size() < 10) t.unexpected.push_back(std::string(call) + ": " + last_error());
    };
    // A thread whose calls are all refused loops fast: run until both did real work.
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; (i < 400 || t.ok < 50) && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20); ++i) {
      note("rewind", edgellm_rewind(l.ctx, 0), false);
      note("eval", edgellm_eval(l.ctx, prompt, 4), true);  // full if the other one kept evaluating
      const edgellm_token next = 100;
      note("eval 1", edgellm_eval(l.ctx, &next, 1), true);
      if (edgellm_get_logits(l.ctx)) ++t.ok;
      else note("get_logits", last_error().find("busy") != std::string::npos ? EDGELLM_ERR_BUSY
                                                                              : EDGELLM_ERR_INVALID_ARGUMENT, true);
      edgellm_token tok = -1;
      note("sample", edgellm_sampler_sample(samplers[w], l.ctx, -1, &tok), true);  // no logits after a rewind
      edgellm_generate_params gp = edgellm_generate_default_params();
      gp.n_predict = 3;
      note("generate", edgellm_generate(l.ctx, samplers[w], prompt, 1, &gp, nullptr), true);
      const int32_t n_past = edgellm_n_past(l.ctx);
      if ((n_past < 0 || n_past > 256) && t.unexpected.size() < 10)
        t.unexpected.push_back("n_past " + std::to_string(n_past));
      edgellm_perf perf = sized<edgellm_perf>();
      note("get_perf", edgellm_get_perf(l.ctx, &perf), false);
      edgellm_clear(l.ctx);
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  for (const Tally& t : tally) {
    INFO("ok " << t.ok << ", busy " << t.busy << ", other " << t.other);
    CHECK(t.unexpected.empty());
    for (const std::string& u : t.unexpected) INFO(u);
    CHECK(t.ok > 0);
  }
  // The threads did overlap (else this tested nothing), and the refusals were seen.
  CHECK(tally[0].busy + tally[1].busy > 0);
  // The context is intact: one thread again gets the reference logits.
  const std::vector<float> want = read_floats(kModels + "/stories260K.logits-bos-pos0.txt");
  REQUIRE(edgellm_rewind(l.ctx, 0) == EDGELLM_OK);
  const edgellm_token bos = 1;
  REQUIRE(edgellm_eval(l.ctx, &bos, 1) == EDGELLM_OK);
  const float* got = edgellm_get_logits(l.ctx);
  REQUIRE(got);
  float worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  CHECK(worst < 1e-2f);
  edgellm_sampler_free(samplers[0]);
  edgellm_sampler_free(samplers[1]);
}

TEST_CASE("a call on the context from inside its own generate callback is refused as busy", "[api][tsan]") {
  Loaded l(64);
  edgellm_sampler* s = greedy_sampler(l.model);
  struct State {
    edgellm_context* ctx;
    edgellm_status eval = EDGELLM_OK, rewind = EDGELLM_OK;
    int32_t n_past = -1;
    std::string error;
  } st{l.ctx, EDGELLM_OK, EDGELLM_OK, -1, {}};
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = 4;
  gp.user_data = &st;
  gp.callback = [](const char*, size_t, edgellm_token, void* u) {
    auto* st = static_cast<State*>(u);
    const edgellm_token t = 100;
    st->eval = edgellm_eval(st->ctx, &t, 1);
    st->error = edgellm_last_error();
    st->rewind = edgellm_rewind(st->ctx, 0);
    st->n_past = edgellm_n_past(st->ctx);  // always allowed
    return true;
  };
  const edgellm_token bos = 1;
  CHECK(edgellm_generate(l.ctx, s, &bos, 1, &gp, nullptr) == EDGELLM_OK);
  CHECK(st.eval == EDGELLM_ERR_BUSY);
  CHECK(st.rewind == EDGELLM_ERR_BUSY);
  CHECK(st.error.find("edgellm_eval") != std::string::npos);
  CHECK(st.error.find("busy") != std::string::npos);
  CHECK(st.n_past >= 1);
  CHECK(edgellm_n_past(l.ctx) == 1 + 4 - 1);  // the refused calls changed nothing
  CHECK(std::string(edgellm_status_string(EDGELLM_ERR_BUSY)) == "busy");
  edgellm_sampler_free(s);
}

TEST_CASE("two contexts on one model generate at the same time, each the known tokens", "[api][tsan]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  const std::vector<int32_t> want = read_ids(kModels + "/stories260K.greedy-t0-200.ids");
  REQUIRE(want.size() == 200);
  const int n = 40;
  struct Run {
    edgellm_status status = EDGELLM_ERR_INTERNAL;
    Collected got;
  } runs[2];
  auto worker = [&](Run& run, int32_t n_threads) {
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = n_threads;
    edgellm_context* c = nullptr;
    if ((run.status = edgellm_context_create(m, &cp, &c)) != EDGELLM_OK) return;
    edgellm_sampler_params sp = edgellm_sampler_default_params();
    sp.temperature = 0;
    edgellm_sampler* s = nullptr;
    if ((run.status = edgellm_sampler_create(m, &sp, &s)) == EDGELLM_OK) {
      edgellm_generate_params gp = edgellm_generate_default_params();
      gp.n_predict = n;
      gp.callback = collect;
      gp.user_data = &run.got;
      const edgellm_token bos = 1;
      run.status = edgellm_generate(c, s, &bos, 1, &gp, nullptr);
    }
    edgellm_sampler_free(s);
    edgellm_context_free(c);
  };
  std::thread a(worker, std::ref(runs[0]), 1), b(worker, std::ref(runs[1]), 2);
  a.join();
  b.join();
  for (Run& r : runs) {
    CHECK(r.status == EDGELLM_OK);
    // The callback gets the token that completed each piece of text; a greedy run of 40 tokens
    // from BOS emits each one.
    std::vector<int32_t> head(want.begin(), want.begin() + static_cast<long>(r.got.tokens.size()));
    CHECK(r.got.tokens.size() >= 30);
    CHECK(r.got.tokens == head);
  }
  CHECK(runs[0].got.text == runs[1].got.text);
  edgellm_model_free(m);
}

namespace {

// A log callback's user data: which pair it belongs to, and whether it is the one installed.
struct LogPair {
  int id;
  std::atomic<bool> installed{false};
  std::atomic<int> calls{0};
};
std::atomic<int> g_wrong_user{0};    // a callback got the other pair's user_data
std::atomic<int> g_after_swap{0};    // a callback ran after edgellm_set_log_callback replaced it
LogPair g_pair_a{1}, g_pair_b{2};

template <int Id>
void pair_callback(edgellm_log_level, const char*, void* user) {
  auto* p = static_cast<LogPair*>(user);
  if (p->id != Id) g_wrong_user.fetch_add(1);
  if (!p->installed.load()) g_after_swap.fetch_add(1);
  p->calls.fetch_add(1);
}

}  // namespace

TEST_CASE("swapping the log callback while another thread logs: each callback gets its own user_data",
          "[api][tsan]") {
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  auto log_lines = [&] {
    started.fetch_add(1);
    while (!stop.load()) edgellm_eval(nullptr, nullptr, 1);  // fails, and logs the failure (debug)
  };
  std::thread logger1(log_lines), logger2(log_lines);
  while (started.load() < 2) std::this_thread::yield();
  // At least a second of swapping (the race it looks for is a window of a few instructions).
  const auto t0 = std::chrono::steady_clock::now();
  auto enough = [&](int i) {
    const auto dt = std::chrono::steady_clock::now() - t0;
    return i >= 20000 && ((dt > std::chrono::seconds(1) && g_pair_a.calls.load() > 100 && g_pair_b.calls.load() > 100) ||
                          dt > std::chrono::seconds(10));
  };
  for (int i = 0; !enough(i); ++i) {
    LogPair& next = i % 2 ? g_pair_b : g_pair_a;
    LogPair& prev = i % 2 ? g_pair_a : g_pair_b;
    next.installed = true;
    if (i % 2) edgellm_set_log_callback(pair_callback<2>, EDGELLM_LOG_DEBUG, &g_pair_b);
    else edgellm_set_log_callback(pair_callback<1>, EDGELLM_LOG_DEBUG, &g_pair_a);
    // Once the call returned, the replaced callback is never called again (its data may go).
    prev.installed = false;
  }
  stop = true;
  logger1.join();
  logger2.join();
  edgellm_set_log_callback(nullptr, EDGELLM_LOG_DEBUG, nullptr);
  g_pair_a.installed = g_pair_b.installed = false;
  edgellm_eval(nullptr, nullptr, 1);  // silent now: no callback runs
  CHECK(g_wrong_user.load() == 0);
  CHECK(g_after_swap.load() == 0);
  CHECK(g_pair_a.calls.load() > 0);
  CHECK(g_pair_b.calls.load() > 0);
}

TEST_CASE("a log callback may log and set the log callback itself without deadlock", "[api][tsan]") {
  struct State {
    int depth = 0, calls = 0, swapped = 0;
  };
  static State st;
  st = {};
  static edgellm_log_callback self = nullptr;
  self = [](edgellm_log_level, const char*, void* u) {
    auto* s = static_cast<State*>(u);
    ++s->calls;
    if (s->depth++ == 0) {
      edgellm_eval(nullptr, nullptr, 1);                           // logs from inside the callback
      edgellm_set_log_callback(self, EDGELLM_LOG_DEBUG, u);        // re-installs itself
      ++s->swapped;
    }
    --s->depth;
  };
  edgellm_set_log_callback(self, EDGELLM_LOG_DEBUG, &st);
  // From another thread too, so a lock held by this one cannot hide a deadlock.
  std::thread([] { edgellm_eval(nullptr, nullptr, 1); }).join();
  edgellm_eval(nullptr, nullptr, 1);
  edgellm_set_log_callback(nullptr, EDGELLM_LOG_DEBUG, nullptr);
  CHECK(st.swapped == 2);
  CHECK(st.calls == 4);  // each outer line and its nested one
}

TEST_CASE("n_ctx too large for memory or the address space is refused, not an internal error", "[api]") {
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  for (int32_t n_ctx : {INT32_MAX, INT32_MAX - 31, int32_t{1} << 30}) {
    INFO("n_ctx " << n_ctx);
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    edgellm_context* c = reinterpret_cast<edgellm_context*>(0x1);
    const edgellm_status s = edgellm_context_create(m, &cp, &c);
    INFO(last_error());
    CHECK((s == EDGELLM_ERR_OUT_OF_MEMORY || s == EDGELLM_ERR_INVALID_ARGUMENT));
    CHECK(c == nullptr);
    CHECK(last_error().find("n_ctx " + std::to_string(n_ctx)) != std::string::npos);
    CHECK(last_error().find("bytes") != std::string::npos);
  }
  // The model is unharmed: a normal context still works.
  Loaded ok(64);
  const edgellm_token bos = 1;
  CHECK(edgellm_eval(ok.ctx, &bos, 1) == EDGELLM_OK);
  edgellm_model_free(m);
}

TEST_CASE("far more threads than cores: a warning in the log, and decode still takes bounded time", "[api]") {
  std::vector<std::string> warnings;
  edgellm_set_log_callback(
      [](edgellm_log_level, const char* msg, void* u) { static_cast<std::vector<std::string>*>(u)->push_back(msg); },
      EDGELLM_LOG_WARN, &warnings);
  const int32_t n_threads =
      std::min<int32_t>(1024, std::max<int32_t>(64, 4 * static_cast<int32_t>(std::thread::hardware_concurrency())));
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 64;
  cp.n_threads = n_threads;
  edgellm_context* c = nullptr;
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  edgellm_set_log_callback(nullptr, EDGELLM_LOG_WARN, nullptr);
  CHECK(edgellm_n_threads(c) == n_threads);  // warned, not capped
  bool warned = false;
  for (const std::string& w : warnings)
    warned = warned || (w.find("n_threads " + std::to_string(n_threads)) != std::string::npos &&
                        w.find("CPU") != std::string::npos);
  INFO("warnings: " << warnings.size() << (warnings.empty() ? "" : ", first: " + warnings[0]));
  CHECK(warned);

  const std::vector<int32_t> want = read_ids(kModels + "/stories260K.greedy-t0-200.ids");
  edgellm_sampler* s = greedy_sampler(m);
  Collected got;
  edgellm_generate_params gp = edgellm_generate_default_params();
  gp.n_predict = 16;
  gp.callback = collect;
  gp.user_data = &got;
  const edgellm_token bos = 1;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(edgellm_generate(c, s, &bos, 1, &gp, nullptr) == EDGELLM_OK);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(seconds < 20.0);  // a hang detector, not a speed test (2 threads: well under 0.1 s)
  CHECK(got.tokens == std::vector<int32_t>(want.begin(), want.begin() + static_cast<long>(got.tokens.size())));
  CHECK(got.tokens.size() >= 12);
  edgellm_sampler_free(s);
  edgellm_context_free(c);
  edgellm_model_free(m);
}
