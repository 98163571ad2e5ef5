// Test helper: ask the pinned llama.cpp (bin/llama-oracle, see llama_oracle.cpp) about a model.
// Header-only; any test can include it ("../oracle/oracle.hpp"). The oracle's path comes from the
// EDGELLM_LLAMA_ORACLE compile definition that tests/CMakeLists.txt gives every test.
//
//   auto l = edgellm::oracle::logits(model, {1});                 // last position, kDefaultVariant
//   auto a = edgellm::oracle::logits(model, ids, "haswell", true); // every position, AVX2 build
//   float x = a.at(pos, token);
//   auto ids = edgellm::oracle::tokenize(vocab_gguf, "Hello", false, false);
//   auto gen = edgellm::oracle::greedy(model, {1}, 200);
//   auto text = edgellm::oracle::chat("chatml", {{"user", "Hi"}}, true);
//   auto names = edgellm::oracle::chat_names();                   // llama.cpp's template names
//   auto which = edgellm::oracle::chat_detect({jinja});           // the name llama.cpp detects
//
// Every failure (oracle missing, llama.cpp refusing the file, ...) throws std::runtime_error with
// the oracle's own error message, so a test that needs llama.cpp fails, never skips.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EDGELLM_LLAMA_ORACLE
#error "EDGELLM_LLAMA_ORACLE (path of bin/llama-oracle) must be defined"
#endif

extern char** environ;

namespace edgellm::oracle {

// The best CPU build of llama.cpp for this machine that does not use AMX (zen4 or icelake on an
// AVX-512 CPU, haswell on an AVX2 one): a plain reference without AMX weight repacking. Which
// builds load depends on the CPU flags the machine shows, so tests never name one except haswell
// (AVX2, loads on every machine of this project's kind).
inline constexpr const char* kDefaultVariant = "noamx";
inline constexpr int kDefaultThreads = 1;  // results do not depend on it; the cores are shared

struct Output {
  int status = -1;  // exit status (or -1 when killed by a signal)
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the oracle with `args` (no shell involved) and collects its stdout and stderr.
inline Output run_raw(const std::vector<std::string>& args) {
  const std::string exe = EDGELLM_LLAMA_ORACLE;
  if (access(exe.c_str(), X_OK) != 0)
    throw std::runtime_error("llama.cpp oracle " + exe + " is missing: build target llama-oracle "
                             "(needs tools/setup.sh)");
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  if (pipe(err_pipe) != 0) {
    close(out_pipe[0]); close(out_pipe[1]);
    throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
    posix_spawn_file_actions_addclose(&fa, fd);

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]); close(err_pipe[0]);
    throw std::runtime_error("cannot start " + exe + ": " + std::strerror(rc));
  }

  Output o;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&o.out, &o.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& p : fds)
    if (p.fd >= 0) close(p.fd);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {}
  o.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  return o;
}

// Runs the oracle; throws with its stderr when it fails. Returns stdout.
inline std::string run(const std::vector<std::string>& args) {
  Output o = run_raw(args);
  if (o.status != 0) {
    std::string cmd = "llama-oracle";
    for (const std::string& a : args) cmd += " " + (a.size() > 80 ? a.substr(0, 80) + "..." : a);
    throw std::runtime_error(cmd + " failed (status " + std::to_string(o.status) + "): " + o.err);
  }
  return o.out;
}

// A scratch file that is removed when this object goes out of scope.
class TempFile {
 public:
  TempFile() {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/edgellm-oracle-XXXXXX";
    const int fd = mkstemp(path_.data());
    if (fd < 0) throw std::runtime_error("mkstemp " + path_ + ": " + std::strerror(errno));
    close(fd);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

inline std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  const char* p = text.c_str();
  char* end = nullptr;
  for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
    ids.push_back(static_cast<int32_t>(v));
    p = end;
  }
  return ids;
}

// Extracts the integer after "key": in the oracle's one-line JSON.
inline long json_int(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) throw std::runtime_error("oracle output has no " + key + ": " + json);
  return std::strtol(json.c_str() + at + key.size() + 3, nullptr, 10);
}

// Extracts the string after "key": in the oracle's one-line JSON (no escapes expected).
inline std::string json_str(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":\"");
  if (at == std::string::npos) throw std::runtime_error("oracle output has no " + key + ": " + json);
  const size_t from = at + key.size() + 4;
  return json.substr(from, json.find('"', from) - from);
}

struct Logits {
  std::string cpu;  // the CPU build that computed them ("icelake", ...)
  int n_rows = 0;
  int n_vocab = 0;
  std::vector<float> values;  // [n_rows][n_vocab]
  const float* row(int r) const { return values.data() + static_cast<size_t>(r) * n_vocab; }
  float at(int r, int token) const { return row(r)[token]; }
};

// Options beyond the model and the tokens, passed through to the oracle (e.g. {"--kv", "f32"}).
inline Logits logits(const std::string& model, const std::vector<int32_t>& tokens,
                     const std::string& variant = kDefaultVariant, bool all = false,
                     int threads = kDefaultThreads, const std::vector<std::string>& extra = {}) {
  TempFile out;
  std::vector<std::string> args = {"logits", "-m", model, "--cpu", variant, "-t",
                                   std::to_string(threads), "--tokens", join_ids(tokens),
                                   "-o", out.path()};
  if (all) args.push_back("--all");
  args.insert(args.end(), extra.begin(), extra.end());
  const std::string meta = run(args);
  Logits l;
  l.cpu = json_str(meta, "cpu");
  l.n_rows = static_cast<int>(json_int(meta, "n_rows"));
  l.n_vocab = static_cast<int>(json_int(meta, "n_vocab"));
  std::ifstream f(out.path(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), {});
  const size_t want = static_cast<size_t>(l.n_rows) * static_cast<size_t>(l.n_vocab);
  if (l.n_rows <= 0 || l.n_vocab <= 0 || bytes.size() != want * sizeof(float))
    throw std::runtime_error("oracle logits file has " + std::to_string(bytes.size()) +
                             " bytes, expected " + std::to_string(want * sizeof(float)));
  l.values.resize(want);
  std::memcpy(l.values.data(), bytes.data(), bytes.size());
  return l;
}

inline std::vector<int32_t> greedy(const std::string& model, const std::vector<int32_t>& prompt,
                                   int n, const std::string& variant = kDefaultVariant,
                                   int threads = kDefaultThreads) {
  return parse_ids(run({"greedy", "-m", model, "--cpu", variant, "-t", std::to_string(threads),
                        "--tokens", join_ids(prompt), "-n", std::to_string(n)}));
}

// The text goes through a file, so any bytes (newlines, a leading '-') arrive unchanged.
inline std::vector<int32_t> tokenize(const std::string& model, const std::string& text,
                                     bool add_special, bool parse_special) {
  TempFile in;
  {
    std::ofstream f(in.path(), std::ios::binary);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f) throw std::runtime_error("cannot write " + in.path());
  }
  std::vector<std::string> args = {"tokenize", "-m", model, "-f", in.path()};
  if (add_special) args.push_back("--add-special");
  if (parse_special) args.push_back("--parse-special");
  return parse_ids(run(args));
}

// llama.cpp's llama_chat_apply_template: `tmpl` is template text or a built-in name; messages are
// {role, content} pairs. Throws when llama.cpp does not support the template.
inline std::string chat(const std::string& tmpl,
                        const std::vector<std::pair<std::string, std::string>>& messages,
                        bool add_assistant) {
  TempFile t, m;
  {
    std::ofstream f(t.path(), std::ios::binary);
    f << tmpl;
    std::ofstream g(m.path(), std::ios::binary);
    for (const auto& [role, content] : messages) {
      g << role << '\0' << content << '\0';
    }
    if (!f || !g) throw std::runtime_error("cannot write the chat oracle's input files");
  }
  std::vector<std::string> args = {"chat", "--template-file", t.path(), "--messages-file",
                                   m.path()};
  if (add_assistant) args.push_back("--add-ass");
  return run(args);
}

// llama.cpp's built-in chat template names (llama_chat_builtin_templates), in its order.
inline std::vector<std::string> chat_names() {
  std::vector<std::string> names;
  const std::string out = run({"chat-names"});
  size_t at = 0;
  for (size_t nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1)
    names.push_back(out.substr(at, nl - at));
  if (names.empty()) throw std::runtime_error("llama-oracle chat-names printed no names");
  return names;
}

// The name of the built-in format llama.cpp files each text under (its llm_chat_detect_template;
// a text is a name or Jinja), "unknown" when none, "unnamed" for a format without a name. One
// oracle run for all texts (none may hold a NUL byte).
inline std::vector<std::string> chat_detect(const std::vector<std::string>& texts) {
  if (texts.empty()) return {};
  TempFile t;
  {
    std::ofstream f(t.path(), std::ios::binary);
    for (const std::string& text : texts) {
      if (text.find('\0') != std::string::npos) throw std::runtime_error("chat_detect: a text holds a NUL byte");
      f << text << '\0';
    }
    if (!f) throw std::runtime_error("cannot write " + t.path());
  }
  const std::string out = run({"chat-detect", "--template-file", t.path()});
  std::vector<std::string> names;
  size_t at = 0;
  for (size_t nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1)
    names.push_back(out.substr(at, nl - at));
  if (names.size() != texts.size())
    throw std::runtime_error("llama-oracle chat-detect printed " + std::to_string(names.size()) +
                             " lines for " + std::to_string(texts.size()) + " texts");
  return names;
}

inline std::string detokenize(const std::string& model, const std::vector<int32_t>& ids,
                              bool remove_special = false, bool unparse_special = false) {
  std::vector<std::string> args = {"detokenize", "-m", model, "--tokens", join_ids(ids)};
  if (remove_special) args.push_back("--remove-special");
  if (unparse_special) args.push_back("--unparse-special");
  return run(args);
}

}  // namespace edgellm::oracle
