// edgellm-bench: prompt-processing and generation speed, measured like llama-bench.
//
//   edgellm-bench -m model.gguf -p 512 -n 128 -t 2 -r 5 [-d 512] [--backend auto|cpu|metal] [-o md|json]
//
// pp<P>: P tokens into an empty cache, one eval (the prefill path).
// tg<N>: N tokens decoded one at a time (the decode path), from an empty cache or, with -d D,
//        after D tokens already in the cache (filled untimed).
// Each test runs once to warm up, then -r times; speeds are mean ± sample sd over the repetitions.
// Tokens are pseudo-random ids (speed does not depend on them). `-o json` writes llama-bench's
// field names, so the same scripts read both. Uses only the public API.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "edgellm/edgellm.hpp"
#include "tool_common.hpp"

namespace {

using edgellm::tools::Args;
using edgellm::tools::UsageError;

struct Options {
  std::string model;
  int32_t n_prompt = 512;
  int32_t n_gen = 128;
  int32_t n_depth = 0;
  int32_t n_threads = 0;
  int32_t reps = 5;
  edgellm_kv_type kv_type = EDGELLM_KV_F16;
  std::string backend = "auto";
  std::string output = "md";
};

struct Result {
  int32_t n_prompt = 0, n_gen = 0, n_depth = 0;
  std::vector<double> samples_ns;
  std::vector<double> samples_ts;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

class Bench {
 public:
  Bench(edgellm::Model& model, edgellm::Context& ctx) : model_(model), ctx_(ctx) {
    n_vocab_ = model.info().n_vocab;
  }

  std::vector<edgellm::Token> random_tokens(int32_t n) {
    std::uniform_int_distribution<int32_t> pick(0, n_vocab_ - 1);
    std::vector<edgellm::Token> t(static_cast<size_t>(n));
    for (auto& x : t) x = pick(rng_);
    return t;
  }

  // Nanoseconds for one eval of n_prompt tokens into an empty cache.
  double prompt_ns(int32_t n_prompt) {
    ctx_.clear();
    std::vector<edgellm::Token> t = random_tokens(n_prompt);
    auto t0 = std::chrono::steady_clock::now();
    ctx_.eval(t);
    return elapsed_ns(t0);
  }

  // Nanoseconds for n_gen single-token evals after n_depth tokens (filled untimed).
  double gen_ns(int32_t n_gen, int32_t n_depth) {
    ctx_.clear();
    if (n_depth > 0) ctx_.eval(random_tokens(n_depth));
    std::vector<edgellm::Token> t = random_tokens(n_gen);
    auto t0 = std::chrono::steady_clock::now();
    for (edgellm::Token tok : t) ctx_.eval({tok});
    return elapsed_ns(t0);
  }

 private:
  static double elapsed_ns(std::chrono::steady_clock::time_point t0) {
    return static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  }
  edgellm::Model& model_;
  edgellm::Context& ctx_;
  int32_t n_vocab_ = 0;
  std::mt19937 rng_{42};
};

Options parse(int argc, char** argv) {
  Options o;
  Args a(argc, argv);
  while (a.more()) {
    std::string opt = a.next();
    if (opt == "-m" || opt == "--model") o.model = a.value(opt);
    else if (opt == "-p" || opt == "--n-prompt") o.n_prompt = static_cast<int32_t>(a.integer(opt, 0, 1 << 20));
    else if (opt == "-n" || opt == "--n-gen") o.n_gen = static_cast<int32_t>(a.integer(opt, 0, 1 << 20));
    else if (opt == "-d" || opt == "--kv-depth" || opt == "--n-depth") o.n_depth = static_cast<int32_t>(a.integer(opt, 0, 1 << 20));
    else if (opt == "-t" || opt == "--threads") o.n_threads = static_cast<int32_t>(a.integer(opt, 0, 1024));
    else if (opt == "-r" || opt == "--repetitions") o.reps = static_cast<int32_t>(a.integer(opt, 1, 1000));
    else if (opt == "--kv-type" || opt == "-ctk") {
      std::string v = a.value(opt);
      if (v == "f16") o.kv_type = EDGELLM_KV_F16;
      else if (v == "f32") o.kv_type = EDGELLM_KV_F32;
      else if (v == "q8_0") o.kv_type = EDGELLM_KV_Q8_0;
      else throw UsageError("option " + opt + " must be f16, f32 or q8_0, got '" + v + "'");
    }
    else if (opt == "--backend") o.backend = a.value(opt);
    else if (opt == "-o" || opt == "--output") {
      o.output = a.value(opt);
      if (o.output != "md" && o.output != "json") throw UsageError("option -o must be md or json, got '" + o.output + "'");
    }
    else if (opt == "-h" || opt == "--help") {
      std::fprintf(stderr,
          "usage: edgellm-bench -m MODEL.gguf [-p 512] [-n 128] [-d DEPTH] [-t THREADS] [-r 5] [--kv-type f16|f32|q8_0]\n"
          "                     [--backend auto|cpu|metal] [-o md|json]\n"
          "  --backend NAME  where the model runs (default auto: the GPU of an Apple build, else the CPU);\n"
          "                  the one used is the JSON's \"backends\" field and the table's backend column\n");
      std::exit(0);
    }
    else throw UsageError("unknown option '" + opt + "' (see --help)");
  }
  if (o.model.empty()) throw UsageError("no model given (-m MODEL.gguf)");
  if (o.n_prompt == 0 && o.n_gen == 0) throw UsageError("nothing to run: -p and -n are both 0");
  return o;
}

// The process's peak resident memory so far (the model's touched pages, the KV cache, buffers).
unsigned long long peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<unsigned long long>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

// Bytes one decoded token reads at cache depth `depth`: the weights it uses plus the K and V rows
// of every earlier position in every layer.
uint64_t bytes_per_token(const edgellm_model_info& info, edgellm_kv_type kv, int32_t depth) {
  const uint64_t kv_width = static_cast<uint64_t>(info.head_dim) * info.n_head_kv;
  // Bytes per 32 cached values: F16 64, F32 128, Q8_0 34 (one fp16 scale + 32 int8).
  const uint64_t per32 = kv == EDGELLM_KV_F16 ? 64 : kv == EDGELLM_KV_F32 ? 128 : 34;
  return info.decode_bytes + 2ull * info.n_layer * kv_width * per32 / 32 * static_cast<uint64_t>(depth);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    edgellm::Model model(o.model);
    const edgellm_model_info info = model.info();
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = std::max(o.n_prompt, o.n_depth + o.n_gen);
    cp.n_threads = o.n_threads;
    cp.kv_type = o.kv_type;
    cp.backend = o.backend.c_str();
    edgellm::Context ctx(model, cp);
    Bench bench(model, ctx);
    const int32_t n_threads = edgellm_n_threads(ctx.get());
    // llama-bench's names for the backend that ran ("CPU", "Metal").
    const std::string backend = ctx.backend_name();
    const char* backends = backend == "metal" ? "Metal" : backend == "cpu" ? "CPU" : backend.c_str();

    std::vector<Result> results;
    if (o.n_prompt > 0) {
      Result r;
      r.n_prompt = o.n_prompt;
      bench.prompt_ns(o.n_prompt);  // warm-up
      for (int i = 0; i < o.reps; ++i) r.samples_ns.push_back(bench.prompt_ns(o.n_prompt));
      results.push_back(r);
    }
    if (o.n_gen > 0) {
      Result r;
      r.n_gen = o.n_gen;
      r.n_depth = o.n_depth;
      bench.gen_ns(std::min(o.n_gen, 16), o.n_depth);  // warm-up
      for (int i = 0; i < o.reps; ++i) r.samples_ns.push_back(bench.gen_ns(o.n_gen, o.n_depth));
      results.push_back(r);
    }
    for (Result& r : results)
      for (double ns : r.samples_ns) r.samples_ts.push_back(1e9 * (r.n_prompt + r.n_gen) / ns);

    const char* kv_name = o.kv_type == EDGELLM_KV_F16 ? "f16" : o.kv_type == EDGELLM_KV_F32 ? "f32" : "q8_0";
    if (o.output == "json") {
      char when[32];
      std::time_t now = std::time(nullptr);
      std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
      auto list = [](const std::vector<double>& v, bool integer) {
        std::string s = "[";
        char buf[48];
        for (size_t i = 0; i < v.size(); ++i) {
          std::snprintf(buf, sizeof buf, integer ? "%s%.0f" : "%s%.6f", i ? ", " : "", v[i]);
          s += buf;
        }
        return s + "]";
      };
      std::printf("[\n");
      for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        std::printf(
            "  {\"build_commit\": \"edgellm\", \"build_number\": 0, \"cpu_info\": \"\", \"gpu_info\": \"\", "
            "\"backends\": \"%s\", \"model_filename\": %s, \"model_type\": %s, \"model_size\": %llu, "
            "\"model_n_params\": %llu, \"n_batch\": %d, \"n_ubatch\": %d, \"n_threads\": %d, \"type_k\": \"%s\", "
            "\"type_v\": \"%s\", \"n_gpu_layers\": %d, \"use_mmap\": true, \"n_prompt\": %d, \"n_gen\": %d, "
            "\"n_depth\": %d, \"test_time\": \"%s\", \"avg_ns\": %.0f, \"stddev_ns\": %.0f, \"avg_ts\": %.6f, "
            "\"stddev_ts\": %.6f, \"samples_ns\": %s, \"samples_ts\": %s, \"bytes_per_token\": %llu, "
            "\"load_ms\": %.1f, \"peak_rss_bytes\": %llu}%s\n",
            backends, edgellm::tools::json_string(o.model).c_str(), edgellm::tools::json_string(info.description).c_str(),
            static_cast<unsigned long long>(info.size_bytes), static_cast<unsigned long long>(info.n_params),
            cp.n_ctx, cp.n_ctx, n_threads, kv_name, kv_name, backend == "cpu" ? 0 : info.n_layer, r.n_prompt, r.n_gen, r.n_depth, when,
            mean(r.samples_ns), stddev(r.samples_ns), mean(r.samples_ts), stddev(r.samples_ts),
            list(r.samples_ns, true).c_str(), list(r.samples_ts, false).c_str(),
            static_cast<unsigned long long>(r.n_gen ? bytes_per_token(info, o.kv_type, r.n_depth) : 0),
            info.load_ms, peak_rss_bytes(), i + 1 < results.size() ? "," : "");
      }
      std::printf("]\n");
      return 0;
    }

    std::printf("| model | size | params | backend | threads | type_kv | test | t/s |\n");
    std::printf("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |\n");
    for (const Result& r : results) {
      std::string test = r.n_prompt ? "pp" + std::to_string(r.n_prompt) : "tg" + std::to_string(r.n_gen);
      if (r.n_depth) test += " @ d" + std::to_string(r.n_depth);
      std::printf("| %s | %s | %s | %s | %d | %s | %s | %.2f ± %.2f |\n", info.description,
                  edgellm::tools::format_bytes(static_cast<double>(info.size_bytes)).c_str(),
                  edgellm::tools::format_count(static_cast<double>(info.n_params)).c_str(), backends, n_threads, kv_name,
                  test.c_str(), mean(r.samples_ts), stddev(r.samples_ts));
    }
    if (o.n_gen > 0) {
      const uint64_t b = bytes_per_token(info, o.kv_type, o.n_depth);
      const double ts = mean(results.back().samples_ts);
      std::printf("\nbytes read per decoded token at depth %d: %s (weights %s + KV %s); at %.2f t/s that is %.2f GB/s\n",
                  o.n_depth, edgellm::tools::format_bytes(static_cast<double>(b)).c_str(),
                  edgellm::tools::format_bytes(static_cast<double>(info.decode_bytes)).c_str(),
                  edgellm::tools::format_bytes(static_cast<double>(b - info.decode_bytes)).c_str(), ts,
                  static_cast<double>(b) * ts / 1e9);
    }
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgellm-bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgellm-bench: error: %s\n", e.what());
    return 1;
  }
}
