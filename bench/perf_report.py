#!/usr/bin/env python3
"""Side-by-side performance report: edgellm against llama.cpp on the same file, threads and machine.

    bench/perf_report.py [--build build] [--model FILE] [--reps 5] [--threads 2] [--skip-kernels]

Prints the markdown tables of docs/PERFORMANCE.md to stdout (progress to stderr):
  1. the whole model (edgellm-bench vs llama.cpp's own timing through bin/llama-oracle bench):
     pp512, tg128 from an empty cache and tg128 after 512 tokens, median tokens/s over --reps runs
     that alternate between the two engines (a drifting machine hurts both alike), and the ratio;
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


def model_tables(build, model, reps, threads):
    ours_bin = os.path.join(build, "bin", "edgellm-bench")
    llama_bin = os.path.join(build, "bin", "llama-oracle")
    tests = [("pp512", ["-p", "512", "-n", "0"]), ("tg128", ["-p", "0", "-n", "128"]),
             ("tg128 @ d512", ["-p", "0", "-n", "128", "-d", "512"])]
    # llama.cpp's builds to compare with: the one it picks by default (AMX where the CPU has it)
    # and the best without AMX, when they differ.
    names = {}
    for v in ["best", "noamx"]:
        out = subprocess.run([llama_bin, "info", "-m", model, "--cpu", v, "-t", "1"], check=True,
                             capture_output=True, text=True).stdout
        names[v] = json.loads(out)["cpu"]
    variants = ["best"] if names["best"] == names["noamx"] else ["best", "noamx"]
    samples = {}  # (engine, test) -> [t/s]
    info = {}
    for rep in range(reps):
        for test, args in tests:
            for engine in ["edgellm"] + variants:
                if engine == "edgellm":
                    cmd = [ours_bin, "-m", model, "-t", str(threads), "-r", "1", "-o", "json"] + args
                else:
                    cmd = [llama_bin, "bench", "-m", model, "--cpu", engine, "-t", str(threads), "-r", "1"] + args
                res = run_json(cmd)[0]
                samples.setdefault((engine, test), []).extend(res["samples_ts"])
                if engine == "edgellm":
                    info = res
    med = {k: statistics.median(v) for k, v in samples.items()}
    lines = []
    lines.append(f"Model: `{os.path.basename(model)}` ({info.get('model_type', '?')}, "
                 f"{info.get('model_size', 0) / 2**20:.2f} MiB), {threads} threads, F16 KV cache, "
                 f"median of {reps} runs per engine (alternating), tokens/s.")
    lines.append("")
    head = "| test | edgellm |" + "".join(f" llama.cpp ({names[v]}) | ratio |" for v in variants)
    lines.append(head)
    lines.append("| --- | ---: |" + " ---: | ---: |" * len(variants))
    for test, _ in tests:
        row = f"| {test} | {med[('edgellm', test)]:.1f} |"
        for v in variants:
            row += f" {med[(v, test)]:.1f} | {med[('edgellm', test)] / med[(v, test)]:.2f}x |"
        lines.append(row)
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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-kernels", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    a = ap.parse_args()
    out = []
    if not a.skip_model:
        out.append(model_tables(a.build, a.model or default_model(a.build), a.reps, a.threads))
    if not a.skip_kernels:
        out.append(kernel_tables(a.build))
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
