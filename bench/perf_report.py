#!/usr/bin/env python3
"""Side-by-side performance report: edgellm against llama.cpp on the same file, threads and machine.

    bench/perf_report.py [--build build] [--model FILE] [--reps 5] [--threads 1,2] [--kv f16,q8_0]
                         [--depths 0,512,2048,4096] [--prompts 512,2048] [--skip-kernels] [--skip-model]

Prints the markdown tables of docs/PERFORMANCE.md to stdout (progress to stderr):
  1. the whole model (edgellm-bench vs llama.cpp's own timing through bin/llama-oracle bench), for
     each thread count and KV cache type: pp512 (and each --prompts length), and tg128 at each
     cache depth; median tokens/s
     over --reps runs that alternate between the engines (a drifting machine hurts both alike), the
     ratio, and for decode rows the % of the roofline: the read bandwidth of that thread count
     (measured in the same run, before and after, by bench-kernels) divided by the bytes a token
     reads (weights + the K/V rows at that depth, edgellm-bench's bytes_per_token). Peak RSS and
     load time of each engine (medians) close the table;
  2. the kernels (bin/bench-kernels): read bandwidth, decode-shape GEMV from DRAM and in cache,
     ours and llama.cpp's vec_dot, and the prefill GEMM, medians of 3 repetitions.
Without --model it uses models/tinyllama-q4_k_m.gguf, written once by edgellm-synth (TinyLlama-1.1B
shape, Q4_K_M recipe, the Llama SPM vocabulary from ../shared/models when present).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_json(cmd):
    log("$ " + " ".join(cmd))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def default_model(build):
    path = os.path.join(ROOT, "models", "tinyllama-q4_k_m.gguf")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cmd = [os.path.join(build, "bin", "edgellm-synth"), "-o", path + ".tmp"]
        vocab = os.path.join(ROOT, "..", "shared", "models", "ggml-vocab-llama-spm.gguf")
        if os.path.exists(vocab):
            cmd += ["--vocab", vocab]
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True)
        os.replace(path + ".tmp", path)
    return path


def read_bandwidth(build):
    """GB/s per thread count from bench-kernels' read_bandwidth rows (median of 3)."""
    exe = os.path.join(build, "bin", "bench-kernels")
    data = run_json([exe, "--benchmark_filter=read_bandwidth", "--benchmark_repetitions=3",
                     "--benchmark_report_aggregates_only=true", "--benchmark_format=json"])
    out = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[int(b["run_name"].split(":")[1].split("/")[0])] = b.get("bytes_per_second", 0) / 1e9
    return out


def model_tables(build, model, reps, threads_list, kv_list, depths, prompts):
    ours_bin = os.path.join(build, "bin", "edgellm-bench")
    llama_bin = os.path.join(build, "bin", "llama-oracle")
    tests = [(f"pp{p}", ["-p", str(p), "-n", "0"], 0) for p in prompts]
    tests += [(f"tg128 @ d{d}" if d else "tg128", ["-p", "0", "-n", "128", "-d", str(d)], d) for d in depths]
    # llama.cpp's builds to compare with: the one it picks by default (AMX where the CPU has it)
    # and the best without AMX, when they differ.
    names = {}
    for v in ["best", "noamx"]:
        out = subprocess.run([llama_bin, "info", "-m", model, "--cpu", v, "-t", "1"], check=True,
                             capture_output=True, text=True).stdout
        names[v] = json.loads(out)["cpu"]
    variants = ["best"] if names["best"] == names["noamx"] else ["best", "noamx"]
    bw_runs = [read_bandwidth(build)]
    samples = {}  # (threads, kv, engine, test) -> [t/s]
    extra = {}    # (engine, "rss"|"load") -> [values]
    bytes_tok = {}  # (kv, test) -> bytes per decoded token
    info = {}
    for rep in range(reps):
        for threads in threads_list:
            for kv in kv_list:
                for test, args, depth in tests:
                    for engine in ["edgellm"] + variants:
                        if engine == "edgellm":
                            cmd = [ours_bin, "-m", model, "-t", str(threads), "-r", "1", "-o", "json",
                                   "--kv-type", kv] + args
                        else:
                            cmd = [llama_bin, "bench", "-m", model, "--cpu", engine, "-t", str(threads),
                                   "-r", "1", "--kv", kv] + args
                        res = run_json(cmd)[0]
                        samples.setdefault((threads, kv, engine, test), []).extend(res["samples_ts"])
                        key = "edgellm" if engine == "edgellm" else "llama.cpp (" + names[engine] + ")"
                        if "peak_rss_bytes" in res:
                            extra.setdefault((key, "rss"), []).append(res["peak_rss_bytes"] / 2**20)
                            extra.setdefault((key, "load"), []).append(res["load_ms"])
                        if engine == "edgellm":
                            info = res
                            bytes_tok[(kv, test)] = res.get("bytes_per_token", 0)
    bw_runs.append(read_bandwidth(build))
    bw = {t: statistics.median([r[t] for r in bw_runs if t in r]) for t in threads_list
          if any(t in r for r in bw_runs)}
    med = {k: statistics.median(v) for k, v in samples.items()}
    lines = []
    lines.append(f"Model: `{os.path.basename(model)}` ({info.get('model_type', '?')}, "
                 f"{info.get('model_size', 0) / 2**20:.2f} MiB), median of {reps} runs per engine "
                 f"(alternating), tokens/s. Read bandwidth (bench-kernels, before and after): " +
                 ", ".join(f"{t} thread{'s' if t > 1 else ''} {bw[t]:.1f} GB/s" for t in sorted(bw)) + ".")
    lines.append("")
    head = "| threads | KV | test | edgellm | % roofline |" + "".join(
        f" llama.cpp ({names[v]}) | ratio |" for v in variants)
    lines.append(head)
    lines.append("| ---: | --- | --- | ---: | ---: |" + " ---: | ---: |" * len(variants))
    for threads in threads_list:
        for kv in kv_list:
            for test, _, _ in tests:
                ours = med[(threads, kv, "edgellm", test)]
                roof = ""
                b = bytes_tok.get((kv, test), 0)
                if test.startswith("tg") and b and threads in bw:
                    roof = f"{100 * ours * b / (bw[threads] * 1e9):.0f}%"
                row = f"| {threads} | {kv} | {test} | {ours:.1f} | {roof} |"
                for v in variants:
                    theirs = med[(threads, kv, v, test)]
                    row += f" {theirs:.1f} | {ours / theirs:.2f}x |"
                lines.append(row)
    if extra:
        lines.append("")
        lines.append("| engine | peak RSS (MiB, median) | load time (ms, median) |")
        lines.append("| --- | ---: | ---: |")
        for key in sorted({k for k, _ in extra}):
            lines.append(f"| {key} | {statistics.median(extra[(key, 'rss')]):.0f} | "
                         f"{statistics.median(extra[(key, 'load')]):.0f} |")
    return "\n".join(lines)


def kernel_tables(build):
    exe = os.path.join(build, "bin", "bench-kernels")
    flt = "read_bandwidth|gemv/q._K/[^/]*/[0-9x]*/threads:2/(real_time|cached)|gemm/q._K/avx512"
    data = run_json([exe, "--benchmark_filter=" + flt, "--benchmark_repetitions=3",
                     "--benchmark_report_aggregates_only=true", "--benchmark_format=json"])
    rows = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        rows[b["run_name"]] = b
    gb = lambda b: b.get("bytes_per_second", 0) / 1e9
    lines = []
    bw = {k: gb(v) for k, v in rows.items() if k.startswith("read_bandwidth")}
    lines.append("Read bandwidth (streaming sum over 1.25 GiB, with the kernels' software prefetch): " +
                 ", ".join(f"{k.split('/')[1]}: {v:.1f} GB/s" for k, v in sorted(bw.items())) + ".")
    lines.append("")
    lines.append("Decode GEMV, 2 threads, weights from DRAM (GB/s of weights, % of the 2-thread read "
                 "bandwidth) and in cache (GB/s):")
    lines.append("")
    lines.append("| type | shape | ISA | DRAM GB/s | % of bw | cached GB/s | vs llama.cpp (DRAM) |")
    lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for t in ["q4_K", "q6_K"]:
        for shape in ["2048x2048", "256x2048", "5632x2048", "2048x5632", "32000x2048"]:
            isas = sorted({k.split("/")[2] for k in rows if k.startswith(f"gemv/{t}/") and f"/{shape}/" in k})
            llama = next((i for i in isas if i.startswith("llama.cpp")), None)
            for isa in isas:
                dram = rows.get(f"gemv/{t}/{isa}/{shape}/threads:2/real_time")
                cached = rows.get(f"gemv/{t}/{isa}/{shape}/threads:2/cached/real_time")
                if not dram:
                    continue
                ref = rows.get(f"gemv/{t}/{llama}/{shape}/threads:2/real_time") if llama else None
                ratio = f"{gb(dram) / gb(ref):.2f}x" if ref and isa != llama else ""
                lines.append(f"| {t} | {shape} | {isa} | {gb(dram):.1f} | {dram.get('pct_of_read_bw', 0):.0f}% | "
                             f"{gb(cached) if cached else 0:.1f} | {ratio} |")
    lines.append("")
    lines.append("Prefill GEMM, 512 activation rows, 2 threads (int8 GOP/s, 2 ops per multiply-add):")
    lines.append("")
    lines.append("| type | shape | ISA | GOP/s |")
    lines.append("| --- | --- | --- | ---: |")
    for k, v in sorted(rows.items()):
        if k.startswith("gemm/"):
            parts = k.split("/")
            lines.append(f"| {parts[1]} | {parts[3]} | {parts[2]} | {v.get('GFLOPs', 0):.0f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--model")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="2", help="comma-separated thread counts (e.g. 1,2)")
    ap.add_argument("--kv", default="f16", help="comma-separated KV cache types (f16, q8_0, f32)")
    ap.add_argument("--depths", default="0,512", help="comma-separated decode depths ('' for none)")
    ap.add_argument("--prompts", default="512", help="comma-separated prefill lengths (e.g. 512,2048)")
    ap.add_argument("--skip-kernels", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    a = ap.parse_args()
    out = []
    if not a.skip_model:
        ints = lambda v: [int(x) for x in v.split(",") if x]
        out.append(model_tables(a.build, a.model or default_model(a.build), a.reps, ints(a.threads),
                                [x for x in a.kv.split(",") if x], ints(a.depths), ints(a.prompts)))
    if not a.skip_kernels:
        out.append(kernel_tables(a.build))
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
