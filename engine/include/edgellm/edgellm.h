/* edgellm — public C API.
 *
 * Plain C (C99 or later) and C++. Every function returns or reports a status; none throws, aborts
 * or prints. When a call fails, edgellm_last_error() tells what failed, where and why (per thread).
 * Handles are opaque; free each with its own _free function (NULL is allowed there).
 *
 * Typical use:
 *   edgellm_model* m; edgellm_model_load("m.gguf", NULL, &m);
 *   edgellm_context* c; edgellm_context_create(m, NULL, &c);
 *   edgellm_token t[64]; int32_t n; edgellm_tokenize(m, "Hello", -1, true, false, t, 64, &n);
 *   edgellm_eval(c, t, n);  -> edgellm_get_logits(c)
 * or edgellm_generate() with a sampler and a per-token callback.
 *
 * Growing the API without breaking apps (the ABI rule). Every struct that crosses the API by
 * pointer starts with `size_t struct_size`: sizeof that struct as the app's copy of this header
 * declares it. The *_default_params() functions set it; they are inline, so the sizeof is the
 * app's, and the library function behind them (*_params_init) writes only that many bytes. For
 * the structs the library fills in (edgellm_model_info, edgellm_generate_result, edgellm_perf),
 * the app sets it: `edgellm_perf p; p.struct_size = sizeof p;`. The library reads and writes only
 * the first struct_size bytes of a struct; fields it knows that lie beyond them take their
 * defaults. Rules for whoever changes this header:
 *   - fields are only ever appended, each at an offset >= the struct's sizeof in the previous
 *     release (so an old app's padding is never read as a new field); never removed, reordered
 *     or retyped; a function's signature never changes (add a new function instead);
 *   - a new field's default is what the library did before the field existed.
 * So an app built against an older edgellm.h runs unchanged with a newer library. A struct_size
 * of 0 (a struct never initialized) or larger than this library knows (an app built against a
 * newer header) is refused with EDGELLM_ERR_INVALID_ARGUMENT and a message that says so.
 * Why sized structs rather than opaque params with setters: the structs stay plain C values (on
 * the stack, no allocation, nothing to free), code written as `p = edgellm_context_default_params();
 * p.n_ctx = 512;` compiles unchanged, and one check in the library covers every field.
 *
 * Threads. What may be shared, and which calls may run at the same time:
 *   - A model is read-only once loaded: any number of threads may use it at once (tokenize,
 *     detokenize, chat templates, info, and creating contexts and samplers on it). Several
 *     contexts on one model may run at the same time, each on its own thread.
 *   - A context is used by one thread at a time. A call on a context that another call on the
 *     same context is still running (edgellm_eval, edgellm_generate, edgellm_get_logits*,
 *     edgellm_rewind, edgellm_clear, edgellm_sampler_sample with it, edgellm_get_perf,
 *     edgellm_reset_perf) is refused with EDGELLM_ERR_BUSY and changes nothing; the void ones
 *     (edgellm_clear, edgellm_reset_perf) then do nothing (edgellm_last_error() says so). The same
 *     holds inside a token callback for calls on the context that edgellm_generate is running.
 *     Exceptions, callable from any thread at any time: edgellm_cancel, edgellm_n_ctx,
 *     edgellm_n_threads, edgellm_n_past (the count as of the last call that finished).
 *   - A sampler likewise: a second call on a sampler that is in use (edgellm_sampler_sample,
 *     edgellm_sampler_accept, edgellm_generate with it; edgellm_sampler_reset does nothing then)
 *     is refused with EDGELLM_ERR_BUSY.
 *   - The logits pointer from edgellm_get_logits* is valid until the next call that evaluates,
 *     rewinds or clears that context; do not read it while such a call runs on another thread.
 *   - Freeing: edgellm_*_free must not race with any other call on the same handle, and a model
 *     must outlive its contexts and samplers. The library cannot detect these.
 *   - edgellm_set_log_callback may be called from any thread, also from inside the log
 *     callback; see there. edgellm_last_error() is per thread.
 */
#ifndef EDGELLM_H
#define EDGELLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  define EDGELLM_API
#else
#  define EDGELLM_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status, errors, version, logging ---------------------------------------------------- */

typedef enum edgellm_status {
  EDGELLM_OK = 0,
  EDGELLM_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, value out of range, token id out of range */
  EDGELLM_ERR_IO = 2,               /* file missing or unreadable */
  EDGELLM_ERR_FORMAT = 3,           /* not a GGUF file, or a malformed one */
  EDGELLM_ERR_UNSUPPORTED = 4,      /* architecture or tensor type this library does not run */
  EDGELLM_ERR_OUT_OF_MEMORY = 5,
  EDGELLM_ERR_CONTEXT_FULL = 6,     /* the tokens do not fit in the context (n_ctx) */
  EDGELLM_ERR_BUFFER_TOO_SMALL = 7, /* caller's buffer too small; the required size was returned */
  EDGELLM_ERR_CANCELLED = 8,        /* a progress callback or edgellm_cancel() stopped the call */
  EDGELLM_ERR_INTERNAL = 9,         /* a bug: please report it with edgellm_last_error() */
  EDGELLM_ERR_BUSY = 10             /* another thread is using the same context or sampler (see
                                       "Threads" above); nothing was changed, try again later */
} edgellm_status;

/* Short name of a status ("ok", "invalid argument", ...). Never NULL. */
EDGELLM_API const char* edgellm_status_string(edgellm_status status);

/* Message of the last failed call on this thread ("edgellm_model_load: cannot open 'x.gguf': No
 * such file or directory"); "" when none failed. Valid until the next failing call on this thread. */
EDGELLM_API const char* edgellm_last_error(void);

/* Library version, "MAJOR.MINOR.PATCH". */
EDGELLM_API const char* edgellm_version(void);

typedef enum edgellm_log_level {
  EDGELLM_LOG_DEBUG = 0,
  EDGELLM_LOG_INFO = 1,
  EDGELLM_LOG_WARN = 2,
  EDGELLM_LOG_ERROR = 3
} edgellm_log_level;

/* Receives one log line (no trailing newline). May be called from any thread that runs a call. */
typedef void (*edgellm_log_callback)(edgellm_log_level level, const char* message, void* user_data);

/* Library logs go to `callback` when its level >= min_level. The default, and callback == NULL,
 * is silent. The library never writes to stdout or stderr by itself. */
EDGELLM_API void edgellm_set_log_callback(edgellm_log_callback callback, edgellm_log_level min_level,
                                          void* user_data);

/* ---- Model ----------------------------------------------------------------------------------- */

typedef int32_t edgellm_token;
typedef struct edgellm_model edgellm_model;
typedef struct edgellm_context edgellm_context;
typedef struct edgellm_sampler edgellm_sampler;

/* Load progress in [0, 1] (today: 0 before the file is mapped, 1 when the model is ready); return
 * false to cancel the load (edgellm_model_load then returns EDGELLM_ERR_CANCELLED). */
typedef bool (*edgellm_progress_callback)(float progress, void* user_data);

typedef struct edgellm_model_params {
  size_t struct_size;                          /* sizeof(edgellm_model_params): see the ABI rule */
  bool use_mmap;                               /* true (default): map the file read-only, no copy,
                                                  fast to load, pages shared with other processes;
                                                  but the file must stay as it is while the model
                                                  is loaded: truncating or overwriting it changes
                                                  the weights under the model (each eval first
                                                  checks the file's size and mtime and then fails
                                                  with EDGELLM_ERR_IO, but cannot catch a change
                                                  during an eval). false: read the whole file
                                                  into memory (slower load, private memory); the
                                                  model then holds no mapping and no descriptor,
                                                  so later changes to the file do not matter */
  edgellm_progress_callback progress_callback; /* may be NULL */
  void* progress_user_data;
  bool vocab_only;                             /* false (default). true: read only the
                                                  vocabulary (tokenizer.* metadata): a file
                                                  without weights (llama.cpp's ggml-vocab-*.gguf)
                                                  loads; tokenize, detokenize, token pieces, chat
                                                  templates and the info (n_vocab, bos, eos,
                                                  add_bos; the shape fields are 0) work, and
                                                  edgellm_context_create refuses the model with
                                                  EDGELLM_ERR_INVALID_ARGUMENT */
} edgellm_model_params;

/* Writes the defaults into the first struct_size bytes of *params (struct_size included). */
EDGELLM_API void edgellm_model_params_init(edgellm_model_params* params, size_t struct_size);
static inline edgellm_model_params edgellm_model_default_params(void) {
  edgellm_model_params p;
  edgellm_model_params_init(&p, sizeof p);
  return p;
}

/* params may be NULL (defaults). On success *model is a new model; on failure it is NULL. */
EDGELLM_API edgellm_status edgellm_model_load(const char* path, const edgellm_model_params* params,
                                              edgellm_model** model);
EDGELLM_API void edgellm_model_free(edgellm_model* model);

typedef struct edgellm_model_info {
  size_t struct_size;       /* set by the app: sizeof(edgellm_model_info) */
  const char* architecture; /* "llama"; owned by the model */
  const char* description;  /* "llama 1B Q4_K - Medium"; owned by the model */
  int32_t n_vocab;
  int32_t n_ctx_train;
  int32_t n_embd;
  int32_t n_layer;
  int32_t n_head;
  int32_t n_head_kv;
  uint64_t size_bytes;      /* bytes of all weight tensors */
  uint64_t n_params;        /* number of weights */
  uint64_t decode_bytes;    /* weight bytes one decoded token reads: all but the unused rows of
                               the token embedding table */
  edgellm_token bos;        /* -1 when the vocabulary has none */
  edgellm_token eos;        /* -1 when the vocabulary has none */
  bool add_bos;             /* the metadata asks for BOS at the start of a prompt */
  bool has_chat_template;   /* tokenizer.chat_template is present */
  double load_ms;           /* wall time edgellm_model_load took */
  int32_t head_dim;         /* values per attention head (attention.key_length; not always
                               n_embd / n_head: Qwen3, Gemma) */
} edgellm_model_info;

EDGELLM_API edgellm_status edgellm_model_get_info(const edgellm_model* model, edgellm_model_info* info);

/* The model's chat template text (tokenizer.chat_template), or NULL when it has none. */
EDGELLM_API const char* edgellm_model_chat_template(const edgellm_model* model);

/* True for end-of-generation tokens (EOS, EOT, ...). */
EDGELLM_API bool edgellm_token_is_eog(const edgellm_model* model, edgellm_token token);

/* ---- Tokenizer ------------------------------------------------------------------------------- */

/* Tokenize text_len bytes of text (text_len < 0: up to the NUL). add_special: add BOS (and EOS)
 * as the model's metadata asks. parse_special: turn special-token text such as "<s>" into the
 * special token instead of plain text. *n_tokens receives the number of tokens the text needs;
 * if capacity is smaller, nothing is written and EDGELLM_ERR_BUFFER_TOO_SMALL is returned, except
 * for tokens == NULL && capacity == 0: a size query that returns EDGELLM_OK. */
EDGELLM_API edgellm_status edgellm_tokenize(const edgellm_model* model, const char* text, int64_t text_len,
                                            bool add_special, bool parse_special, edgellm_token* tokens,
                                            int32_t capacity, int32_t* n_tokens);

/* The text of one token. Writes the bytes and a NUL; *length receives the byte count without the
 * NUL (also when the buffer is too small: then EDGELLM_ERR_BUFFER_TOO_SMALL). special: render
 * control tokens ("<s>") instead of "". A piece may be part of a UTF-8 character (byte tokens). */
EDGELLM_API edgellm_status edgellm_token_to_piece(const edgellm_model* model, edgellm_token token, bool special,
                                                  char* buf, size_t capacity, size_t* length);

/* The text of a token sequence (SentencePiece's leading space of the first piece removed, as
 * llama.cpp does). Buffer rules as edgellm_token_to_piece. */
EDGELLM_API edgellm_status edgellm_detokenize(const edgellm_model* model, const edgellm_token* tokens,
                                              int32_t n_tokens, bool special, char* buf, size_t capacity,
                                              size_t* length);

/* ---- Context: KV cache, evaluation, logits --------------------------------------------------- */

/* Q8_0: keys and values as Q8_0 blocks (llama.cpp's -ctk/-ctv q8_0), ~53% of F16's memory and
   bytes read per token; needs head_dim a multiple of 32; CPU backend only. */
typedef enum edgellm_kv_type { EDGELLM_KV_F16 = 0, EDGELLM_KV_F32 = 1, EDGELLM_KV_Q8_0 = 2 } edgellm_kv_type;

typedef struct edgellm_context_params {
  size_t struct_size;      /* sizeof(edgellm_context_params): see the ABI rule */
  int32_t n_ctx;           /* positions in the KV cache (> 0; default 2048) */
  int32_t n_threads;       /* worker threads; 0 = number of physical cores */
  edgellm_kv_type kv_type; /* default F16 */
  bool logits_all;         /* keep logits for every token of a batch, not only the last */
  const char* backend;     /* where the forward pass runs: "cpu"; "metal" (the Apple GPU, in a
                              build configured with -DEDGELLM_METAL=ON, the default on Apple);
                              or "auto" (the default; also NULL): Metal when the build has it,
                              the machine has an Apple GPU (M1 / A14 or later) and its kernels
                              read every weight type of the model, else the CPU.
                              edgellm_backend_name() says which one a context got. "metal" is
                              refused with EDGELLM_ERR_UNSUPPORTED in a build or on a machine
                              without it, or for a model with a weight type the Metal kernels do
                              not read (they read Q4_K, Q6_K, Q8_0, Q4_0, F16, F32); any other
                              name with EDGELLM_ERR_INVALID_ARGUMENT. Read only during the call. */
} edgellm_context_params;

EDGELLM_API void edgellm_context_params_init(edgellm_context_params* params, size_t struct_size);
static inline edgellm_context_params edgellm_context_default_params(void) {
  edgellm_context_params p;
  edgellm_context_params_init(&p, sizeof p);
  return p;
}

/* params may be NULL (defaults). The model must outlive the context. */
EDGELLM_API edgellm_status edgellm_context_create(edgellm_model* model, const edgellm_context_params* params,
                                                  edgellm_context** ctx);
EDGELLM_API void edgellm_context_free(edgellm_context* ctx);

EDGELLM_API int32_t edgellm_n_ctx(const edgellm_context* ctx);     /* -1 for NULL */
EDGELLM_API int32_t edgellm_n_threads(const edgellm_context* ctx); /* -1 for NULL */
EDGELLM_API int32_t edgellm_n_past(const edgellm_context* ctx);    /* tokens in the cache; -1 for NULL */
/* The backend the context runs on ("cpu", "metal"); "" for NULL. Static storage: never freed. */
EDGELLM_API const char* edgellm_backend_name(const edgellm_context* ctx);

/* Run n_tokens at positions n_past .. n_past+n_tokens-1: prefill (GEMM path) for n_tokens > 1,
 * decode (GEMV path) for 1. EDGELLM_ERR_CONTEXT_FULL, and nothing changes, when they do not fit. */
EDGELLM_API edgellm_status edgellm_eval(edgellm_context* ctx, const edgellm_token* tokens, int32_t n_tokens);

/* n_vocab logits of the last token of the last eval, or NULL (with the reason in
 * edgellm_last_error()) when there are none. */
EDGELLM_API const float* edgellm_get_logits(edgellm_context* ctx);

/* Logits of the i-th token of the last eval (i < 0 counts from the end: -1 is the last).
 * Tokens other than the last have logits only with logits_all. */
EDGELLM_API const float* edgellm_get_logits_ith(edgellm_context* ctx, int32_t i);

/* Forget every position >= n_past (0 <= n_past <= edgellm_n_past()). Logits are dropped. */
EDGELLM_API edgellm_status edgellm_rewind(edgellm_context* ctx, int32_t n_past);

/* Empty the cache (same as edgellm_rewind(ctx, 0)). */
EDGELLM_API void edgellm_clear(edgellm_context* ctx);

/* Ask a running edgellm_generate() on ctx to stop before its next token. Callable from any
 * thread; the request is consumed by the generate call it stops (or by the next one). */
EDGELLM_API void edgellm_cancel(edgellm_context* ctx);

/* ---- Sampler --------------------------------------------------------------------------------- */

#define EDGELLM_SEED_RANDOM 0xFFFFFFFFu

typedef struct edgellm_sampler_params {
  size_t struct_size;      /* sizeof(edgellm_sampler_params): see the ABI rule */
  float temperature;       /* <= 0: greedy (argmax), as llama.cpp's --temp 0 */
  int32_t top_k;           /* 0: off */
  float top_p;             /* 1: off */
  float min_p;             /* 0: off */
  float repeat_penalty;    /* 1: off */
  float frequency_penalty; /* 0: off */
  float presence_penalty;  /* 0: off */
  int32_t penalty_last_n;  /* window of recent tokens the penalties look at; 0: off, -1: all */
  uint32_t seed;           /* EDGELLM_SEED_RANDOM: from the clock */
} edgellm_sampler_params;

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, no penalties, window 64. */
EDGELLM_API void edgellm_sampler_params_init(edgellm_sampler_params* params, size_t struct_size);
static inline edgellm_sampler_params edgellm_sampler_default_params(void) {
  edgellm_sampler_params p;
  edgellm_sampler_params_init(&p, sizeof p);
  return p;
}

/* params may be NULL (defaults). The sampler is for the model's vocabulary. */
EDGELLM_API edgellm_status edgellm_sampler_create(const edgellm_model* model, const edgellm_sampler_params* params,
                                                  edgellm_sampler** sampler);
EDGELLM_API void edgellm_sampler_free(edgellm_sampler* sampler);

/* Sample a token from the logits of the i-th token of ctx's last eval (-1: the last). Does not
 * accept it: call edgellm_sampler_accept() with the token you keep. The time counts as sampling
 * in ctx's perf counters. */
EDGELLM_API edgellm_status edgellm_sampler_sample(edgellm_sampler* sampler, edgellm_context* ctx, int32_t i,
                                                  edgellm_token* token);

/* Record a token as part of the text (for the repetition penalties). */
EDGELLM_API edgellm_status edgellm_sampler_accept(edgellm_sampler* sampler, edgellm_token token);

/* Forget accepted tokens and restart the random stream from the seed. */
EDGELLM_API void edgellm_sampler_reset(edgellm_sampler* sampler);

/* ---- Chat template --------------------------------------------------------------------------- */

typedef struct edgellm_chat_message {
  const char* role;    /* "system", "user", "assistant" */
  const char* content;
} edgellm_chat_message;

/* Format messages with the model's chat template (tmpl == NULL) or with tmpl (template text or a
 * known name such as "chatml", "llama2", "zephyr"). add_generation_prompt: end with the start of
 * the assistant's turn. Buffer rules as edgellm_token_to_piece. */
EDGELLM_API edgellm_status edgellm_chat_apply_template(const edgellm_model* model, const char* tmpl,
                                                       const edgellm_chat_message* messages, size_t n_messages,
                                                       bool add_generation_prompt, char* buf, size_t capacity,
                                                       size_t* length);

/* ---- Generation ------------------------------------------------------------------------------ */

/* Receives generated text as it becomes final: whole UTF-8 characters, never text that might still
 * turn out to be (the start of) a stop string. `token` is the token that completed this text.
 * Return false to stop generating. */
typedef bool (*edgellm_token_callback)(const char* text, size_t length, edgellm_token token, void* user_data);

typedef enum edgellm_stop_reason {
  EDGELLM_STOP_EOG = 0,          /* the model produced an end-of-generation token (not emitted) */
  EDGELLM_STOP_N_PREDICT = 1,    /* n_predict tokens were generated */
  EDGELLM_STOP_STRING = 2,       /* a stop string appeared (it and what follows are not emitted) */
  EDGELLM_STOP_CONTEXT_FULL = 3, /* the KV cache is full */
  EDGELLM_STOP_CALLBACK = 4,     /* the token callback returned false */
  EDGELLM_STOP_CANCELLED = 5     /* edgellm_cancel() (the call then returns EDGELLM_ERR_CANCELLED) */
} edgellm_stop_reason;

typedef struct edgellm_generate_params {
  size_t struct_size;              /* sizeof(edgellm_generate_params): see the ABI rule */
  int32_t n_predict;               /* tokens to generate at most; < 0: until EOG or a full cache */
  const char* const* stop_strings; /* may be NULL */
  size_t n_stop_strings;
  edgellm_token_callback callback; /* may be NULL */
  void* user_data;
} edgellm_generate_params;

typedef struct edgellm_generate_result {
  size_t struct_size;      /* set by the app: sizeof(edgellm_generate_result) */
  int32_t n_prompt;        /* prompt tokens evaluated */
  int32_t n_generated;     /* tokens sampled (an EOG token is counted, not emitted) */
  edgellm_stop_reason stop_reason;
} edgellm_generate_result;

EDGELLM_API void edgellm_generate_params_init(edgellm_generate_params* params, size_t struct_size);
static inline edgellm_generate_params edgellm_generate_default_params(void) {
  edgellm_generate_params p;
  edgellm_generate_params_init(&p, sizeof p);
  return p;
}

/* Evaluate the prompt tokens at the current position (n_past; so a chat continues its cache),
 * then sample, stream and evaluate up to n_predict tokens. Every sampled token is accepted by the
 * sampler; the last sampled token is not evaluated (so n_past = prompt end + n_generated - 1
 * when it stops after n_predict). result may be NULL (else set its struct_size); it is written
 * also when the call fails, unless its struct_size itself is refused. */
EDGELLM_API edgellm_status edgellm_generate(edgellm_context* ctx, edgellm_sampler* sampler,
                                            const edgellm_token* prompt, int32_t n_prompt,
                                            const edgellm_generate_params* params,
                                            edgellm_generate_result* result);

/* ---- Performance counters -------------------------------------------------------------------- */

typedef struct edgellm_perf {
  size_t struct_size;        /* set by the app: sizeof(edgellm_perf) */
  double load_ms;            /* the model's load time */
  int32_t n_prefill_tokens;  /* tokens evaluated in batches of more than one */
  double prefill_ms;
  int32_t n_decode_tokens;   /* tokens evaluated one at a time */
  double decode_ms;
  int32_t n_sample;          /* tokens sampled */
  double sample_ms;
  uint64_t peak_rss_bytes;   /* the process's resident-memory high-water mark */
} edgellm_perf;

EDGELLM_API edgellm_status edgellm_get_perf(const edgellm_context* ctx, edgellm_perf* perf);
EDGELLM_API void edgellm_reset_perf(edgellm_context* ctx);

/* ---- Quantization ---------------------------------------------------------------------------- */

/* One tensor written by edgellm_quantize (passed to its callback; valid during the call). */
typedef struct edgellm_quantize_progress {
  size_t struct_size;      /* sizeof the library's struct: fields are only appended */
  int32_t index;           /* 0-based, in file order */
  int32_t n_tensors;
  const char* name;        /* the tensor's name as in the file (not escaped) */
  const char* type_in;     /* "f32", "f16", "bf16" (llama.cpp's type names) */
  const char* type_out;    /* "q4_K", "q5_0", "f16", ...: what was written */
  const char* type_wanted; /* the recipe's type before the row-width fallback (== type_out when
                              the rows fit it; e.g. "q4_K" with type_out "q5_0" for 896-wide rows) */
  int32_t n_dims;
  int64_t ne[4];           /* ne[0]: the row length */
  uint64_t bytes_in;
  uint64_t bytes_out;
} edgellm_quantize_progress;

/* Return false to stop: edgellm_quantize then returns EDGELLM_ERR_CANCELLED and leaves no file. */
typedef bool (*edgellm_quantize_callback)(const edgellm_quantize_progress* progress, void* user_data);

typedef struct edgellm_quantize_params {
  size_t struct_size;                 /* sizeof(edgellm_quantize_params): see the ABI rule */
  int32_t n_threads;                  /* 0 (default): the physical cores; the output does not
                                         depend on it */
  edgellm_quantize_callback callback; /* after each tensor; may be NULL */
  void* user_data;
} edgellm_quantize_params;

EDGELLM_API void edgellm_quantize_params_init(edgellm_quantize_params* params, size_t struct_size);
static inline edgellm_quantize_params edgellm_quantize_default_params(void) {
  edgellm_quantize_params p;
  edgellm_quantize_params_init(&p, sizeof p);
  return p;
}

/* Writes the F32 / F16 / BF16 model `input` to `output` as file type `type` (any case):
 * Q4_K_M, Q4_K_S, Q5_K_M, Q5_K_S, Q3_K_M, Q3_K_S, Q3_K_L, Q2_K, Q6_K, Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1, IQ4_NL, IQ4_XS or F16. The tensor types are llama.cpp's recipe for that file type
 * (llama-quantize without an importance matrix, which is not supported here): more bits for
 * output.weight and some attn_v / ffn_down layers, the file type's main type elsewhere, and a
 * 32-element type where rows do not fit 256-element blocks (Q4_K -> Q5_0, Q5_K -> Q5_1,
 * Q6_K -> Q8_0, Q2_K / Q3_K -> Q4_0, IQ4_XS -> IQ4_NL; F16 where 32 does not fit either); 1-D
 * tensors and norms keep their type. Every metadata key is kept; general.file_type (llama.cpp's
 * number) and general.quantization_version are set. The file is written as output + ".part" and
 * renamed when complete: a failed or cancelled call leaves no output, and output may be input.
 * Errors: EDGELLM_ERR_INVALID_ARGUMENT (NULL paths, unknown type), EDGELLM_ERR_IO (cannot read
 * input or write output), EDGELLM_ERR_FORMAT (not a GGUF model), EDGELLM_ERR_UNSUPPORTED (an
 * already-quantized or split input), EDGELLM_ERR_CANCELLED. params may be NULL (defaults). */
EDGELLM_API edgellm_status edgellm_quantize(const char* input, const char* output, const char* type,
                                            const edgellm_quantize_params* params);

#ifdef __cplusplus
}
#endif

#endif /* EDGELLM_H */
