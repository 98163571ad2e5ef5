// The C++ twin of consumer.c over the header-only wrapper (edgellm.hpp): same output format.
#include <edgellm/edgellm.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer MODEL.gguf\n";
    return 2;
  }
  try {
    constexpr int n_tokens = 8;
    edgellm::Model model(argv[1]);
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    edgellm::Context ctx(model, cp);
    const std::vector<edgellm::Token> prompt = model.tokenize("", true);
    const int n_vocab = model.info().n_vocab;

    std::cout << "ids:";
    ctx.eval(prompt);
    for (int i = 0; i < n_tokens; ++i) {
      const float* logits = ctx.logits();
      edgellm::Token best = static_cast<edgellm::Token>(std::max_element(logits, logits + n_vocab) - logits);
      std::cout << ' ' << best;
      ctx.eval({best});
    }
    std::cout << "\ntext: ";

    ctx.clear();
    edgellm::Sampler greedy(model, edgellm::Sampler::greedy());
    ctx.generate(greedy, prompt, n_tokens, [](std::string_view text) {
      std::cout << text;
      return true;
    });
    std::cout << "\n";
    return 0;
  } catch (const edgellm::Exception& e) {
    std::cerr << "consumer: " << e.what() << " (status " << e.status() << ")\n";
    return 1;
  }
}
