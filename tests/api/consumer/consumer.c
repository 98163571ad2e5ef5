/* A C99 program built against the INSTALLED edgellm (find_package or pkg-config): greedy
 * generation from BOS, twice — by hand (edgellm_eval + argmax of the logits) and with
 * edgellm_generate — printing "ids: ..." and "text: ...". install_test.sh compares the outputs
 * of every build of this program with each other, with edgellm-cli, and with the model's known
 * greedy ids. */
#include <edgellm/edgellm.h>

#include <stdio.h>
#include <string.h>

#define N_TOKENS 8

static int fail(const char* what) {
  fprintf(stderr, "consumer: %s: %s\n", what, edgellm_last_error());
  return 1;
}

static bool on_text(const char* text, size_t length, edgellm_token token, void* user) {
  (void)token;
  (void)user;
  fwrite(text, 1, length, stdout);
  return true;
}

int main(int argc, char** argv) {
  edgellm_model* model = NULL;
  edgellm_context* ctx = NULL;
  edgellm_sampler* sampler = NULL;
  edgellm_context_params cp = edgellm_context_default_params();
  edgellm_sampler_params sp = edgellm_sampler_default_params();
  edgellm_generate_params gp = edgellm_generate_default_params();
  edgellm_model_info info;
  edgellm_token prompt[4];
  int32_t n_prompt = 0;
  int i;

  if (argc != 2) {
    fprintf(stderr, "usage: consumer MODEL.gguf\n");
    return 2;
  }
  if (edgellm_model_load(argv[1], NULL, &model) != EDGELLM_OK) return fail("load");
  info.struct_size = sizeof info; /* the library writes only what this header declares */
  if (edgellm_model_get_info(model, &info) != EDGELLM_OK) return fail("info");
  cp.n_ctx = 64;
  cp.n_threads = 1;
  cp.backend = "cpu";
  if (edgellm_context_create(model, &cp, &ctx) != EDGELLM_OK) return fail("context");
  if (edgellm_tokenize(model, "", 0, true, false, prompt, 4, &n_prompt) != EDGELLM_OK) return fail("tokenize");

  /* By hand: eval, argmax, eval the argmax, ... */
  printf("ids:");
  if (edgellm_eval(ctx, prompt, n_prompt) != EDGELLM_OK) return fail("eval");
  for (i = 0; i < N_TOKENS; ++i) {
    const float* logits = edgellm_get_logits(ctx);
    edgellm_token best = 0;
    int32_t v;
    if (!logits) return fail("logits");
    for (v = 1; v < info.n_vocab; ++v)
      if (logits[v] > logits[best]) best = v;
    printf(" %d", best);
    if (edgellm_eval(ctx, &best, 1) != EDGELLM_OK) return fail("eval");
  }
  printf("\n");

  /* The same with edgellm_generate and a greedy sampler. */
  edgellm_clear(ctx);
  sp.temperature = 0.0f;
  if (edgellm_sampler_create(model, &sp, &sampler) != EDGELLM_OK) return fail("sampler");
  gp.n_predict = N_TOKENS;
  gp.callback = on_text;
  printf("text: ");
  if (edgellm_generate(ctx, sampler, prompt, n_prompt, &gp, NULL) != EDGELLM_OK) return fail("generate");
  printf("\n");

  edgellm_sampler_free(sampler);
  edgellm_context_free(ctx);
  edgellm_model_free(model);
  return 0;
}
