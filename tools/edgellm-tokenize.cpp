// edgellm-tokenize: show how a model's tokenizer splits a text.
//
//   edgellm-tokenize -m model.gguf -p "Hello world"          # one "id -> 'piece'" line per token
//   edgellm-tokenize -m model.gguf -p "Hello world" --ids    # [1, 15043, 3186] (llama-tokenize --ids)
// BOS is added when the model's metadata asks for it, unless --no-bos. MODEL may be a vocabulary
// without weights (llama.cpp's ggml-vocab-*.gguf).
#include <cstdio>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "tool_common.hpp"

using edgellm::tools::Args;
using edgellm::tools::terminal_safe;
using edgellm::tools::UsageError;

int main(int argc, char** argv) {
  try {
    std::string model_path, text;
    bool have_text = false, ids_only = false, no_bos = false, parse_special = true;
    Args a(argc, argv);
    while (a.more()) {
      std::string opt = a.next();
      if (opt == "-m" || opt == "--model") model_path = a.value(opt);
      else if (opt == "-p" || opt == "--prompt") { text = a.value(opt); have_text = true; }
      else if (opt == "--ids") ids_only = true;
      else if (opt == "--no-bos") no_bos = true;
      else if (opt == "--no-parse-special") parse_special = false;
      else if (opt == "-h" || opt == "--help") {
        std::fprintf(stderr, "usage: edgellm-tokenize -m MODEL.gguf -p TEXT [--ids] [--no-bos] [--no-parse-special]\n");
        return 0;
      }
      else throw UsageError("unknown option '" + opt + "' (see --help)");
    }
    if (model_path.empty()) throw UsageError("no model given (-m MODEL.gguf)");
    if (!have_text) throw UsageError("no text given (-p TEXT)");

    // Only the vocabulary is read: quick for big models, and vocabulary-only files work too.
    edgellm::Model model = edgellm::Model::vocab_only(model_path);
    std::vector<edgellm::Token> tokens = model.tokenize(text, /*add_special=*/!no_bos, parse_special);
    if (ids_only) {
      std::printf("[");
      for (size_t i = 0; i < tokens.size(); ++i) std::printf(i ? ", %d" : "%d", tokens[i]);
      std::printf("]\n");
      return 0;
    }
    for (edgellm::Token t : tokens) {
      // The piece is the file's text (or a raw byte): escaped, so it cannot drive the terminal.
      std::string piece = terminal_safe(model.token_to_piece(t, /*special=*/true));
      std::printf("%6d -> '%s'\n", t, piece.c_str());
    }
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgellm-tokenize: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgellm-tokenize: error: %s\n", terminal_safe(e.what()).c_str());
    return 1;
  }
}
