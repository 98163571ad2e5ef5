// llama-oracle: the pinned llama.cpp (prebuilt by node-llama-cpp, see tools/setup.sh) driven
// through its C API, so tests and benchmarks can ask "what does llama.cpp say?" about a GGUF file.
//
//   llama-oracle logits     -m FILE --tokens 1,2,3 [--all] [-o OUT]
//   llama-oracle greedy     -m FILE --tokens 1,2,3 -n N
//   llama-oracle tokenize   -m FILE (-p TEXT | -f TEXTFILE) [--add-special] [--parse-special]
//   llama-oracle detokenize -m FILE --tokens 1,2,3 [--remove-special] [--unparse-special]
//   llama-oracle info       -m FILE
//   llama-oracle chat       --template-file T --messages-file M [--add-ass]
//   llama-oracle chat-names
//   llama-oracle chat-detect --template-file T
//   llama-oracle bench      -m FILE [-p 512] [-n 128] [-r 5] [-d 0]
//   llama-oracle quantize   -m FILE -o OUT --ftype q4_0|q4_1|iq4_nl|q8_0|q5_0|q5_1|q4_k_m|q4_k_s|q5_k_m|q5_k_s|q6_k|q2_k|q3_k_s|q3_k_m|q3_k_l|iq4_xs|f16 [--pure]
// Common options (model commands):
//   --cpu VARIANT  CPU backend library: libggml-cpu-VARIANT.so of the prebuilt folder (zen4,
//                  haswell, sapphirerapids, ...), or a path to a .so; "best" (default) lets ggml
//                  pick the best one for this CPU; "noamx" picks the best one that does not use
//                  AMX (no weight repacking: a plain reference, zen4 or icelake on AVX-512 CPUs).
//                  Exactly one CPU backend is loaded per process.
//   -t N           threads (default: online CPUs; always passed explicitly to llama.cpp)
//   -c N           context size (default: what the command needs)
//   --kv f16|f32|q8_0  KV cache type (default f16, as llama.cpp; q8_0 needs flash attention)
//   --fa auto|on|off  flash attention (default auto, as llama.cpp)
//   --no-repack    no weight repacking at load (llama.cpp's use_extra_bufts = false): the plain
//                  vec_dot kernels instead of the interleaved GEMM/GEMV ones (Q4_0, Q4_K on AVX2+)
//   --verbose      keep llama.cpp's log on stderr
//
// Output (stdout; errors go to stderr with exit status 1):
//   logits     without -o: one line per position, the n_vocab logits as %.9g separated by spaces.
//              with -o OUT: OUT holds the raw logits, little-endian float32, row-major
//              [n_rows][n_vocab] (row r = position r with --all, else the single last position),
//              and stdout holds one JSON line {"n_rows":R,"n_vocab":V,"cpu":"...","argmax":[...]}.
//   greedy     the N generated token ids, separated by spaces, one line.
//   tokenize   the token ids separated by spaces, one line.
//   detokenize the text bytes, no newline added.
//   chat       llama_chat_apply_template's text (no model needed). T holds the template text or a
//              built-in name ("chatml", "llama2", ...); M holds role and content of each message,
//              each followed by a NUL byte.
//   chat-names llama_chat_builtin_templates: the names llama.cpp's chat command accepts, one a line.
//   chat-detect the name of the built-in format llama.cpp files T under (llm_chat_detect_template:
//              T is a name or Jinja text), one line; "unknown" when it files T under none (then
//              llama_chat_apply_template refuses T), "unnamed" for a format without a name. T may
//              hold several texts, each followed by a NUL byte: one line each.
//   info       one JSON line: model_type (llama.cpp's description), model_size, model_n_params,
//              n_vocab, cpu.
//   quantize   OUT is llama.cpp's quantization of FILE (llama_model_quantize: its recipe for the
//              file type, falling back per tensor where rows do not fit the type; --pure: every
//              matrix in the one type where its rows allow). Nothing on stdout; -t threads.
//   bench      a JSON array like `llama-bench -o json`: one object for pp (if -p > 0) and one for
//              tg (if -n > 0), with n_prompt, n_gen, n_depth, n_threads, avg_ns, stddev_ns,
//              avg_ts, stddev_ts, samples_ns, samples_ts, model_type, model_size, ...
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <dirent.h>
#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#ifndef EDGELLM_LLAMA_BINS
#error "EDGELLM_LLAMA_BINS (folder of the prebuilt llama.cpp libraries) must be defined"
#endif

namespace {

struct Options {
  std::string command;
  std::string model;
  std::string cpu = "best";
  int threads = 0;
  int n_ctx = 0;
  std::string kv = "f16";  // K and V cache type: f16, f32, q8_0
  llama_flash_attn_type fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
  bool repack = true;
  bool verbose = false;
  std::vector<llama_token> tokens;
  bool have_tokens = false;
  bool all = false;
  std::string out;
  int n_gen = -1;  // greedy -n / bench -n
  std::string text;
  bool have_text = false;
  bool add_special = false;
  bool parse_special = false;
  bool remove_special = false;
  bool unparse_special = false;
  int n_prompt = 512;  // bench -p
  int reps = 5;
  int depth = 0;
  std::string chat_template;  // chat --template-file
  std::string chat_messages;  // chat --messages-file
  bool add_ass = false;       // chat --add-ass
  int ftype = -1;             // quantize --ftype (a llama_ftype)
  bool pure = false;          // quantize --pure
};

int parse_ftype(const std::string& name) {
  const std::pair<const char*, llama_ftype> names[] = {
      {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
      {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},     {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
      {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},     {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
      {"iq4_nl", LLAMA_FTYPE_MOSTLY_IQ4_NL}, {"q2_k", LLAMA_FTYPE_MOSTLY_Q2_K},
      {"q3_k_m", LLAMA_FTYPE_MOSTLY_Q3_K_M}, {"iq4_xs", LLAMA_FTYPE_MOSTLY_IQ4_XS},
      {"q3_k_s", LLAMA_FTYPE_MOSTLY_Q3_K_S}, {"q3_k_l", LLAMA_FTYPE_MOSTLY_Q3_K_L},
      {"q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"q5_k_s", LLAMA_FTYPE_MOSTLY_Q5_K_S},
      {"f16", LLAMA_FTYPE_MOSTLY_F16}};
  for (const auto& [n, t] : names)
    if (name == n) return static_cast<int>(t);
  throw std::runtime_error("--ftype: unknown file type '" + name + "'");
}

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

int parse_int(const std::string& opt, const std::string& s, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    fail(opt + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
         "], got '" + s + "'");
  return static_cast<int>(v);
}

std::vector<llama_token> parse_tokens(const std::string& s) {
  std::vector<llama_token> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(parse_int("--tokens", item, 0, INT32_MAX));
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '" + path + "'");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

Options parse_args(int argc, char** argv) {
  if (argc < 2) fail("missing command (logits, greedy, tokenize, detokenize, info, chat, chat-names, chat-detect, bench, quantize)");
  Options o;
  o.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + ": missing value");
      return argv[++i];
    };
    if (a == "-m") o.model = value();
    else if (a == "--cpu") o.cpu = value();
    else if (a == "-t") o.threads = parse_int(a, value(), 1, 1024);
    else if (a == "-c") o.n_ctx = parse_int(a, value(), 1, 1 << 24);
    else if (a == "--kv") {
      const std::string v = value();
      if (v != "f16" && v != "f32" && v != "q8_0") fail("--kv: expected f16, f32 or q8_0, got '" + v + "'");
      o.kv = v;
    } else if (a == "--fa") {
      const std::string v = value();
      if (v == "auto") o.fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
      else if (v == "on") o.fa = LLAMA_FLASH_ATTN_TYPE_ENABLED;
      else if (v == "off") o.fa = LLAMA_FLASH_ATTN_TYPE_DISABLED;
      else fail("--fa: expected auto, on or off, got '" + v + "'");
    } else if (a == "--verbose") o.verbose = true;
    else if (a == "--tokens") { o.tokens = parse_tokens(value()); o.have_tokens = true; }
    else if (a == "--all") o.all = true;
    else if (a == "-o") o.out = value();
    else if (a == "-n") o.n_gen = parse_int(a, value(), 0, 1 << 20);
    else if (a == "-p" && o.command == "bench") o.n_prompt = parse_int(a, value(), 0, 1 << 20);
    else if (a == "-p") { o.text = value(); o.have_text = true; }
    else if (a == "-f") { o.text = read_file(value()); o.have_text = true; }
    else if (a == "--no-repack") o.repack = false;
    else if (a == "--add-special") o.add_special = true;
    else if (a == "--parse-special") o.parse_special = true;
    else if (a == "--remove-special") o.remove_special = true;
    else if (a == "--unparse-special") o.unparse_special = true;
    else if (a == "-r") o.reps = parse_int(a, value(), 1, 1000);
    else if (a == "-d") o.depth = parse_int(a, value(), 0, 1 << 20);
    else if (a == "--template-file") o.chat_template = read_file(value());
    else if (a == "--messages-file") o.chat_messages = read_file(value());
    else if (a == "--add-ass") o.add_ass = true;
    else if (a == "--ftype") o.ftype = parse_ftype(value());
    else if (a == "--pure") o.pure = true;
    else fail("unknown option '" + a + "'");
  }
  if (o.model.empty() && o.command != "chat" && o.command != "chat-names" && o.command != "chat-detect")
    fail("-m FILE is required");
  if (o.threads == 0) o.threads = std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  return o;
}

void quiet_log(ggml_log_level, const char*, void*) {}

// Picks the CPU library ggml itself would pick: the libggml-cpu-*.so whose ggml_backend_score()
// is highest for this CPU (0 = unsupported), leaving out the AMX build when !allow_amx. Returns
// its variant name ("zen4", ...).
std::string best_cpu_variant(const std::string& bins, bool allow_amx) {
  std::string best;
  int best_score = 0;
  DIR* dir = opendir(bins.c_str());
  if (!dir) fail("cannot list " + bins);
  const std::string prefix = "libggml-cpu-", suffix = ".so";
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    if (!allow_amx && name.find("sapphirerapids") != std::string::npos) continue;  // the AMX build
    void* lib = dlopen((bins + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    using ScoreFn = int (*)();
    if (auto score = reinterpret_cast<ScoreFn>(dlsym(lib, "ggml_backend_score"))) {
      const int s = score();
      if (s > best_score) {
        best_score = s;
        best = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
      }
    }
    dlclose(lib);
  }
  closedir(dir);
  if (best.empty()) fail("no CPU library in " + bins + " supports this CPU");
  return best;
}

// Loads exactly one CPU backend: the named variant (or a path to a library), or with "best" the
// one ggml would pick ("noamx": the best without AMX). Returns the variant name in use.
std::string load_cpu_backend(const std::string& cpu) {
  const std::string bins = EDGELLM_LLAMA_BINS;
  const std::string variant = cpu == "best"    ? best_cpu_variant(bins, true)
                              : cpu == "noamx" ? best_cpu_variant(bins, false)
                                               : cpu;
  const std::string path =
      variant.find('/') != std::string::npos ? variant : bins + "/libggml-cpu-" + variant + ".so";
  if (access(path.c_str(), R_OK) != 0) fail("--cpu " + cpu + ": no library " + path);
  if (!ggml_backend_load(path.c_str()))
    fail("--cpu " + cpu + ": llama.cpp could not load " + path +
         " (does this CPU support that variant?)");
  if (ggml_backend_dev_count() == 0) fail("no llama.cpp device after loading " + path);
  return variant;
}

std::string g_cpu_variant = "none";  // the CPU library in use (set once in main)

struct Model {
  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  explicit Model(const Options& o, bool vocab_only) {
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = vocab_only;
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = o.repack;
    model = llama_model_load_from_file(o.model.c_str(), mp);
    if (!model) fail("llama.cpp could not load '" + o.model + "' (run with --verbose for its log)");
    vocab = llama_model_get_vocab(model);
  }
  ~Model() { llama_model_free(model); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  int n_vocab() const { return llama_vocab_n_tokens(vocab); }
};

struct Context {
  llama_context* ctx = nullptr;
  Context(const Model& m, const Options& o, int n_ctx_needed, int n_batch, bool logits_all = false) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(o.n_ctx > 0 ? o.n_ctx : n_ctx_needed);
    cp.n_batch = static_cast<uint32_t>(std::max(n_batch, 1));
    cp.n_ubatch = std::min<uint32_t>(cp.n_batch, 512);
    if (logits_all) cp.n_outputs_max = cp.n_batch;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.type_k = cp.type_v = o.kv == "f32" ? GGML_TYPE_F32 : o.kv == "q8_0" ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    cp.flash_attn_type = o.fa;
    cp.no_perf = true;
    ctx = llama_init_from_model(m.model, cp);
    if (!ctx) fail("llama.cpp could not create a context (n_ctx " + std::to_string(cp.n_ctx) + ")");
  }
  ~Context() { llama_free(ctx); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

void check_tokens(const Model& m, const std::vector<llama_token>& tokens) {
  for (llama_token t : tokens)
    if (t < 0 || t >= m.n_vocab())
      fail("token " + std::to_string(t) + " is outside the vocabulary (n_vocab " +
           std::to_string(m.n_vocab()) + ")");
}

void decode(llama_context* ctx, llama_batch batch, const char* what) {
  const int rc = llama_decode(ctx, batch);
  if (rc != 0) fail(std::string("llama_decode failed (") + what + "), rc " + std::to_string(rc));
}

int cmd_quantize(const Options& o) {
  if (o.out.empty() || o.ftype < 0) fail("quantize: -o OUT and --ftype are required");
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.nthread = o.threads;
  p.ftype = static_cast<llama_ftype>(o.ftype);
  p.pure = o.pure;
  if (llama_model_quantize(o.model.c_str(), o.out.c_str(), &p) != 0)
    fail("llama_model_quantize failed for '" + o.model + "' (run with --verbose for its log)");
  return 0;
}

int cmd_logits(const Options& o) {
  if (!o.have_tokens || o.tokens.empty()) fail("logits: --tokens is required");
  Model m(o, false);
  check_tokens(m, o.tokens);
  const int n = static_cast<int>(o.tokens.size());
  const int V = m.n_vocab();
  Context c(m, o, n, n, o.all);

  llama_batch batch = llama_batch_init(n, 0, 1);
  for (int i = 0; i < n; ++i) {
    batch.token[i] = o.tokens[i];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = o.all || i == n - 1;
  }
  batch.n_tokens = n;
  const int rc = llama_decode(c.ctx, batch);
  llama_batch_free(batch);
  if (rc != 0) fail("llama_decode failed, rc " + std::to_string(rc));

  std::vector<float> logits;
  const int first = o.all ? 0 : n - 1;
  for (int i = first; i < n; ++i) {
    const float* row = llama_get_logits_ith(c.ctx, i);
    if (!row) fail("llama.cpp returned no logits for position " + std::to_string(i));
    logits.insert(logits.end(), row, row + V);
  }
  const int rows = n - first;

  if (o.out.empty()) {
    for (int r = 0; r < rows; ++r) {
      for (int v = 0; v < V; ++v) std::printf(v ? " %.9g" : "%.9g", logits[size_t(r) * V + v]);
      std::printf("\n");
    }
    return 0;
  }
  FILE* f = std::fopen(o.out.c_str(), "wb");
  if (!f) fail("cannot create '" + o.out + "': " + std::strerror(errno));
  const size_t written = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
  if (std::fclose(f) != 0 || written != logits.size()) fail("cannot write '" + o.out + "'");
  std::printf("{\"n_rows\":%d,\"n_vocab\":%d,\"cpu\":\"%s\",\"argmax\":[", rows, V,
              g_cpu_variant.c_str());
  for (int r = 0; r < rows; ++r) {
    const float* row = logits.data() + size_t(r) * V;
    std::printf(r ? ",%d" : "%d", static_cast<int>(std::max_element(row, row + V) - row));
  }
  std::printf("]}\n");
  return 0;
}

// The prompt as one batch, then each generated token on its own: llama.cpp's greedy sampler (its
// argmax over the logits) picks every next token.
int cmd_greedy(const Options& o) {
  if (!o.have_tokens || o.tokens.empty()) fail("greedy: --tokens is required");
  if (o.n_gen < 0) fail("greedy: -n N is required");
  Model m(o, false);
  check_tokens(m, o.tokens);
  const int n = static_cast<int>(o.tokens.size());
  Context c(m, o, n + o.n_gen, n);
  llama_sampler* greedy = llama_sampler_init_greedy();

  std::vector<llama_token> prompt = o.tokens;
  std::vector<llama_token> out;
  try {
    decode(c.ctx, llama_batch_get_one(prompt.data(), n), "prompt");
    for (int i = 0; i < o.n_gen; ++i) {
      llama_token next = llama_sampler_sample(greedy, c.ctx, -1);
      out.push_back(next);
      if (i + 1 < o.n_gen) decode(c.ctx, llama_batch_get_one(&next, 1), "generated token");
    }
  } catch (...) {
    llama_sampler_free(greedy);
    throw;
  }
  llama_sampler_free(greedy);
  for (size_t i = 0; i < out.size(); ++i) std::printf(i ? " %d" : "%d", out[i]);
  std::printf("\n");
  return 0;
}

int cmd_tokenize(const Options& o) {
  if (!o.have_text) fail("tokenize: -p TEXT or -f FILE is required");
  Model m(o, true);
  const int len = static_cast<int>(o.text.size());
  std::vector<llama_token> ids(static_cast<size_t>(len) + 8);
  int n = llama_tokenize(m.vocab, o.text.data(), len, ids.data(), static_cast<int>(ids.size()),
                         o.add_special, o.parse_special);
  if (n < 0 && n != INT32_MIN) {
    ids.resize(static_cast<size_t>(-n));
    n = llama_tokenize(m.vocab, o.text.data(), len, ids.data(), static_cast<int>(ids.size()),
                       o.add_special, o.parse_special);
  }
  if (n < 0) fail("llama_tokenize failed (" + std::to_string(n) + ")");
  for (int i = 0; i < n; ++i) std::printf(i ? " %d" : "%d", ids[i]);
  std::printf("\n");
  return 0;
}

int cmd_detokenize(const Options& o) {
  if (!o.have_tokens) fail("detokenize: --tokens is required");
  Model m(o, true);
  check_tokens(m, o.tokens);
  const int n = static_cast<int>(o.tokens.size());
  std::string text(static_cast<size_t>(n) * 16 + 16, '\0');
  int len = llama_detokenize(m.vocab, o.tokens.data(), n, text.data(), static_cast<int>(text.size()),
                             o.remove_special, o.unparse_special);
  if (len < 0) {
    text.resize(static_cast<size_t>(-len));
    len = llama_detokenize(m.vocab, o.tokens.data(), n, text.data(), static_cast<int>(text.size()),
                           o.remove_special, o.unparse_special);
  }
  if (len < 0) fail("llama_detokenize failed (" + std::to_string(len) + ")");
  std::fwrite(text.data(), 1, static_cast<size_t>(len), stdout);
  return 0;
}

int cmd_chat(const Options& o) {
  std::vector<std::string> fields;
  const std::string& all = o.chat_messages;
  for (size_t at = 0, nul; (nul = all.find('\0', at)) != std::string::npos; at = nul + 1)
    fields.push_back(all.substr(at, nul - at));
  if (fields.size() % 2 != 0) fail("chat: the messages file must hold role/content pairs");
  std::vector<llama_chat_message> msgs;
  for (size_t i = 0; i < fields.size(); i += 2)
    msgs.push_back({fields[i].c_str(), fields[i + 1].c_str()});
  std::string out(4096, '\0');
  auto apply = [&] {
    return llama_chat_apply_template(o.chat_template.c_str(), msgs.data(), msgs.size(), o.add_ass,
                                     out.data(), static_cast<int32_t>(out.size()));
  };
  int32_t n = apply();
  if (n > static_cast<int32_t>(out.size())) {
    out.resize(static_cast<size_t>(n));
    n = apply();
  }
  if (n < 0) fail("llama_chat_apply_template does not support this template");
  std::fwrite(out.data(), 1, static_cast<size_t>(n), stdout);
  return 0;
}

int cmd_chat_names() {
  const int32_t n = llama_chat_builtin_templates(nullptr, 0);
  if (n < 0) fail("llama_chat_builtin_templates failed");
  std::vector<const char*> names(static_cast<size_t>(n));
  llama_chat_builtin_templates(names.data(), names.size());
  for (const char* name : names) std::printf("%s\n", name);
  return 0;
}

// llama.cpp's own template detection (src/llama-chat.h). llama.h does not declare these, but
// libllama exports them (C++ linkage, the library's libstdc++ std::string); only the values are
// compared here, so the enum stays opaque. llm_chat_template_from_str throws std::out_of_range for
// a name it does not know.
}  // namespace
enum llm_chat_template : int;
llm_chat_template llm_chat_detect_template(const std::string& tmpl);
llm_chat_template llm_chat_template_from_str(const std::string& name);
namespace {

std::string detected_name(const std::string& tmpl, const std::vector<const char*>& names) {
  const llm_chat_template detected = llm_chat_detect_template(tmpl);
  // UNKNOWN is the one value llama_chat_apply_template refuses.
  const llama_chat_message probe = {"user", "x"};
  char buf[64];
  if (llama_chat_apply_template(tmpl.c_str(), &probe, 1, true, buf, sizeof buf) < 0) return "unknown";
  for (const char* name : names)
    if (llm_chat_template_from_str(name) == detected) return name;
  return "unnamed";
}

int cmd_chat_detect(const Options& o) {
  const int32_t n = llama_chat_builtin_templates(nullptr, 0);
  if (n < 0) fail("llama_chat_builtin_templates failed");
  std::vector<const char*> names(static_cast<size_t>(n));
  llama_chat_builtin_templates(names.data(), names.size());
  const std::string& all = o.chat_template;
  if (all.find('\0') == std::string::npos) {
    std::printf("%s\n", detected_name(all, names).c_str());
    return 0;
  }
  for (size_t at = 0, nul; (nul = all.find('\0', at)) != std::string::npos; at = nul + 1)
    std::printf("%s\n", detected_name(all.substr(at, nul - at), names).c_str());
  return 0;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') { out += '\\'; out += ch; }
    else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out += ch;
  }
  return out;
}

std::string model_desc(const Model& m) {
  char buf[256];
  llama_model_desc(m.model, buf, sizeof buf);
  return buf;
}

int cmd_info(const Options& o) {
  Model m(o, false);
  std::printf("{\"model_type\":\"%s\",\"model_size\":%llu,\"model_n_params\":%llu,\"n_vocab\":%d,"
              "\"cpu\":\"%s\"}\n",
              json_escape(model_desc(m)).c_str(), (unsigned long long)llama_model_size(m.model),
              (unsigned long long)llama_model_n_params(m.model), m.n_vocab(),
              json_escape(g_cpu_variant).c_str());
  return 0;
}

// ---- bench: llama-bench's method ----
// pp: one prompt of p random tokens (BOS first when the vocab adds it) into an empty cache.
// tg: n tokens decoded one at a time. Each test gets its own context of n_prompt + n_gen + depth,
// runs once unmeasured (warm-up), then r measured repetitions, each after clearing the cache and,
// with -d, refilling it with a depth-token prompt (not timed).

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void bench_prompt(llama_context* ctx, const Model& m, int n_prompt, int n_batch) {
  std::vector<llama_token> tokens(static_cast<size_t>(n_batch));
  for (int done = 0; done < n_prompt;) {
    const int n = std::min(n_prompt - done, n_batch);
    for (int i = 0; i < n; ++i) tokens[i] = std::rand() % m.n_vocab();
    if (done == 0 && llama_vocab_get_add_bos(m.vocab)) tokens[0] = llama_vocab_bos(m.vocab);
    decode(ctx, llama_batch_get_one(tokens.data(), n), "bench prompt");
    done += n;
  }
  llama_synchronize(ctx);
}

void bench_gen(llama_context* ctx, const Model& m, int n_gen) {
  llama_token t = llama_vocab_get_add_bos(m.vocab) ? llama_vocab_bos(m.vocab) : std::rand() % m.n_vocab();
  for (int i = 0; i < n_gen; ++i) {
    decode(ctx, llama_batch_get_one(&t, 1), "bench generation");
    llama_synchronize(ctx);
    t = std::rand() % m.n_vocab();
  }
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

double stdev(const std::vector<double>& v) {  // sample standard deviation, as llama-bench
  if (v.size() <= 1) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string join(const std::vector<double>& v, const char* fmt) {
  std::string out;
  char buf[64];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, fmt, v[i]);
    out += (i ? ", " : "") + std::string(buf);
  }
  return out;
}

// The CPU device's description (the processor's brand string).
std::string cpu_description() {
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i)
    if (std::string(ggml_backend_dev_name(ggml_backend_dev_get(i))) == "CPU")
      return ggml_backend_dev_description(ggml_backend_dev_get(i));
  return "unknown";
}

// The process's peak resident memory so far (the model's pages that were touched, the caches).
unsigned long long peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<unsigned long long>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

int cmd_bench(const Options& o) {
  const uint64_t load_t0 = now_ns();
  Model m(o, false);
  const double load_ms = static_cast<double>(now_ns() - load_t0) / 1e6;
  const int n_gen = o.n_gen < 0 ? 128 : o.n_gen;
  const int n_batch = 2048;  // llama-bench's defaults: n_batch 2048, n_ubatch 512
  std::srand(1234);

  struct Test { int n_prompt, n_gen; };
  std::vector<Test> tests;
  if (o.n_prompt > 0) tests.push_back({o.n_prompt, 0});
  if (n_gen > 0) tests.push_back({0, n_gen});

  std::printf("[\n");
  for (size_t ti = 0; ti < tests.size(); ++ti) {
    const Test t = tests[ti];
    Options co = o;
    co.n_ctx = o.n_ctx > 0 ? o.n_ctx : t.n_prompt + t.n_gen + o.depth;
    Context c(m, co, co.n_ctx, n_batch);
    llama_memory_t mem = llama_get_memory(c.ctx);

    if (t.n_prompt > 0) bench_prompt(c.ctx, m, t.n_prompt, n_batch);  // warm-up
    if (t.n_gen > 0) bench_gen(c.ctx, m, 1);

    std::vector<double> samples_ns;
    for (int r = 0; r < o.reps; ++r) {
      llama_memory_clear(mem, false);
      if (o.depth > 0) bench_prompt(c.ctx, m, o.depth, n_batch);
      const uint64_t t0 = now_ns();
      if (t.n_prompt > 0) bench_prompt(c.ctx, m, t.n_prompt, n_batch);
      if (t.n_gen > 0) bench_gen(c.ctx, m, t.n_gen);
      samples_ns.push_back(static_cast<double>(now_ns() - t0));
    }
    std::vector<double> samples_ts;
    for (double ns : samples_ns) samples_ts.push_back(1e9 * (t.n_prompt + t.n_gen) / ns);

    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::printf(
        "  {\n"
        "    \"build_commit\": \"%s\",\n"
        "    \"cpu_info\": \"%s\",\n"
        "    \"backends\": \"CPU\",\n"
        "    \"cpu_variant\": \"%s\",\n"
        "    \"model_filename\": \"%s\",\n"
        "    \"model_type\": \"%s\",\n"
        "    \"model_size\": %llu,\n"
        "    \"model_n_params\": %llu,\n"
        "    \"n_batch\": %d,\n"
        "    \"n_ubatch\": %d,\n"
        "    \"n_threads\": %d,\n"
        "    \"type_k\": \"%s\",\n"
        "    \"type_v\": \"%s\",\n"
        "    \"flash_attn\": %d,\n"
        "    \"n_prompt\": %d,\n"
        "    \"n_gen\": %d,\n"
        "    \"n_depth\": %d,\n"
        "    \"test_time\": \"%s\",\n"
        "    \"avg_ns\": %.0f,\n"
        "    \"stddev_ns\": %.0f,\n"
        "    \"avg_ts\": %.6f,\n"
        "    \"stddev_ts\": %.6f,\n"
        "    \"samples_ns\": [ %s ],\n"
        "    \"samples_ts\": [ %s ],\n"
        "    \"load_ms\": %.1f,\n"
        "    \"peak_rss_bytes\": %llu\n"
        "  }%s\n",
        json_escape(llama_version()).c_str(), json_escape(cpu_description()).c_str(),
        json_escape(g_cpu_variant).c_str(), json_escape(o.model).c_str(),
        json_escape(model_desc(m)).c_str(), (unsigned long long)llama_model_size(m.model),
        (unsigned long long)llama_model_n_params(m.model), n_batch, 512, o.threads,
        o.kv.c_str(), o.kv.c_str(), static_cast<int>(o.fa), t.n_prompt,
        t.n_gen, o.depth, when, mean(samples_ns), stdev(samples_ns), mean(samples_ts),
        stdev(samples_ts), join(samples_ns, "%.0f").c_str(), join(samples_ts, "%.6f").c_str(),
        load_ms, peak_rss_bytes(), ti + 1 < tests.size() ? "," : "");
    std::fflush(stdout);
  }
  std::printf("]\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_args(argc, argv);
    if (!o.verbose) {
      llama_log_set(quiet_log, nullptr);
      ggml_log_set(quiet_log, nullptr);
    }
    const bool needs_backend =
        o.command != "tokenize" && o.command != "detokenize" && o.command != "chat" &&
        o.command != "chat-names" && o.command != "chat-detect" && o.command != "quantize";  // quantize computes nothing
    if (needs_backend) g_cpu_variant = load_cpu_backend(o.cpu);
    llama_backend_init();
    int rc = 1;
    if (o.command == "logits") rc = cmd_logits(o);
    else if (o.command == "greedy") rc = cmd_greedy(o);
    else if (o.command == "tokenize") rc = cmd_tokenize(o);
    else if (o.command == "detokenize") rc = cmd_detokenize(o);
    else if (o.command == "info") rc = cmd_info(o);
    else if (o.command == "bench") rc = cmd_bench(o);
    else if (o.command == "chat") rc = cmd_chat(o);
    else if (o.command == "chat-names") rc = cmd_chat_names();
    else if (o.command == "chat-detect") rc = cmd_chat_detect(o);
    else if (o.command == "quantize") rc = cmd_quantize(o);
    else fail("unknown command '" + o.command + "'");
    llama_backend_free();
    std::fflush(stdout);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama-oracle: error: %s\n", e.what());
    return 1;
  }
}
