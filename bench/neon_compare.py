#!/usr/bin/env python3
"""NEON vec_dot: edgellm against llama.cpp's arm64 CPU libraries, without an ARM device.

qemu cannot time NEON code, but it can count it. For each weight type and ISA variant this
  1. runs bench/neon/neon_count.cpp (aarch64, under qemu-aarch64) calling one engine's vec_dot
     CALLS and 2*CALLS times over a row of BLOCKS super-blocks, with -d in_asm,exec,nochain,
     and counts the instructions executed (per translated block: its instructions, from in_asm,
     times its executions, from the exec lines; the difference of the two runs cancels start-up):
     instructions per weight;
  2. takes one iteration of the kernel's block loop from that trace (the executed TBs between two
     entries of the loop head, inner loops unrolled as they ran), disassembles those addresses
     with objdump from the file they ran from (our neon-count binary, llama.cpp's .so) and gives
     them to llvm-mca for a few core models: cycles per 256-weight block.
Prints a markdown table. The counting method is checked first against a loop of exactly 3
instructions per iteration.

The engines: ours = kernels_for(Isa::neon) (the "neon" table on -cpu cortex-a72, armv8.0;
"neon+dotprod" on -cpu neoverse-n1); llama.cpp = the exported ggml_vec_dot_* of the
libggml-cpu variant llama.cpp's loader would pick on that CPU (armv8.0_1; armv8.2_2 = dotprod +
fp16, neoverse-n1's best, no SVE). Their libraries: the pinned npm package
@node-llama-cpp/linux-arm64 (version from tests/oracle/package.json, checked against the
integrity in package-lock.json), fetched with `npm pack` into the build folder unless
tests/oracle/node_modules already has it.

usage: bench/neon_compare.py [--build DIR] [--blocks 16] [--calls 50] [--types q4_K,q5_K,q6_K,q8_0]
Needs g++-aarch64-linux-gnu, qemu-user (7.2), binutils-aarch64-linux-gnu, llvm-14 (llvm-mca-14), npm.
"""
import argparse
import base64
import collections
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSROOT = "/usr/aarch64-linux-gnu"
# qemu CPU -> (variant label, llama.cpp library, our table's name)
CPUS = [
    ("cortex-a72", "armv8.0", "libggml-cpu-armv8.0_1.so", "neon"),
    ("neoverse-n1", "dotprod", "libggml-cpu-armv8.2_2.so", "neon+dotprod"),
]
# llvm-mca-14 core models. LLVM 14 has no model of its own for cortex-a76 / x1 / neoverse-n1: they
# use the Cortex-A57 one (3-wide, 2 ASIMD pipes); apple-a14 uses the Cyclone (A7) one, 6-wide.
MCA_CPUS = [("cortex-a76", "A76 (A57 model)"), ("cortex-a55", "A55"), ("apple-a14", "A14 (Cyclone model)")]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def log(msg):
    print(f"[neon_compare] {msg}", file=sys.stderr, flush=True)


# ---- build and the llama.cpp libraries ----

def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
             f"-DCMAKE_TOOLCHAIN_FILE={ROOT}/cmake/toolchains/aarch64-linux-gnu.cmake"],
            stdout=subprocess.DEVNULL)
    run(["ninja", "-C", build_dir, "neon-count"], stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "bin", "neon-count")


def llama_libs(build_dir):
    pkg = "@node-llama-cpp/linux-arm64"
    installed = os.path.join(ROOT, "tests/oracle/node_modules", pkg, "bins/linux-arm64")
    if os.path.isdir(installed):
        return installed
    oracle = os.path.join(ROOT, "tests/oracle")
    version = json.load(open(os.path.join(oracle, "package.json")))["dependencies"]["node-llama-cpp"]
    lock = json.load(open(os.path.join(oracle, "package-lock.json")))["packages"]["node_modules/" + pkg]
    if lock["version"] != version:
        sys.exit(f"package-lock.json pins {pkg}@{lock['version']}, package.json node-llama-cpp@{version}")
    dest = os.path.join(build_dir, "llama-arm64")
    libs = os.path.join(dest, "package/bins/linux-arm64")
    if os.path.isdir(libs):
        return libs
    os.makedirs(dest, exist_ok=True)
    log(f"fetching {pkg}@{version} (npm pack)")
    out = run(["npm", "pack", f"{pkg}@{version}", "--json"],
              stdout=subprocess.PIPE, cwd=dest).stdout
    tgz = os.path.join(dest, json.loads(out)[0]["filename"])
    algo, want = lock["integrity"].split("-", 1)
    got = base64.b64encode(hashlib.new(algo, open(tgz, "rb").read()).digest()).decode()
    if got != want:
        sys.exit(f"{tgz}: {algo} {got} is not package-lock.json's {want}")
    with tarfile.open(tgz) as t:
        t.extractall(dest)
    return libs


# ---- qemu instruction counts ----

TRACE = re.compile(r"^Trace \d+: (0x[0-9a-f]+) \[[0-9a-f]+/([0-9a-f]+)/")
INSN = re.compile(r"^0x([0-9a-f]+):\s")


def qemu_trace(cpu, argv):
    """Runs argv under qemu with in_asm + exec logging. Returns (total instructions, list of
    (pc, n_insns) per executed TB, stderr of the program)."""
    with tempfile.NamedTemporaryFile(prefix="neon_count_", suffix=".log", delete=False) as f:
        path = f.name
    try:
        p = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", cpu, "-d", "in_asm,exec,nochain",
                            "-D", path] + argv, text=True, capture_output=True)
        if p.returncode != 0:
            sys.exit(f"{' '.join(argv)} under -cpu {cpu}: exit {p.returncode}\n{p.stderr}")
        # A TB's instructions are logged (IN:) when it is translated, just before its first
        # execution; the host code pointer of that execution then names this translation.
        size_by_host = {}
        pending = {}  # pc -> instructions of a translation not executed yet
        cur_pc, cur_n = None, 0
        execs = []
        total = 0
        with open(path, errors="replace") as log_file:
            for line in log_file:
                if line.startswith("Trace "):
                    if cur_pc is not None:
                        pending[cur_pc], cur_pc = cur_n, None
                    m = TRACE.match(line)
                    host, pc = m.group(1), int(m.group(2), 16)
                    if pc in pending:
                        size_by_host[host] = pending.pop(pc)
                    n = size_by_host[host]
                    total += n
                    execs.append((pc, n))
                elif line.startswith("IN:"):
                    if cur_pc is not None:
                        pending[cur_pc] = cur_n
                    cur_pc, cur_n = None, 0
                elif line.startswith("0x"):
                    m = INSN.match(line)
                    if m:
                        if cur_pc is None:
                            cur_pc = int(m.group(1), 16)
                        cur_n += 1
                elif line.strip() == "" or line.startswith("---"):
                    if cur_pc is not None:
                        pending[cur_pc], cur_pc = cur_n, None
        return total, execs, p.stderr, p.stdout
    finally:
        os.unlink(path)


def fn_info(stderr):
    m = re.search(r"^fn (\S+) (0x[0-9a-f]+) (0x[0-9a-f]+)$", stderr, re.M)
    return (m.group(1), int(m.group(2), 16), int(m.group(3), 16)) if m else None


def count(cpu, binary, mode, typ, blocks, calls, lib):
    """Instructions per call of one engine's vec_dot (the 2N - N difference), and the trace of
    the 2N run (for the loop body)."""
    extra = [lib] if lib else []
    t1, _, _, _ = qemu_trace(cpu, [binary, mode, typ, str(blocks), str(calls)] + extra)
    t2, execs, err, _ = qemu_trace(cpu, [binary, mode, typ, str(blocks), str(2 * calls)] + extra)
    return (t2 - t1) / calls, execs, err


def calibrate(binary, cpu):
    """The probe loop runs 3 instructions x 256 BLOCKS per call: the per-call count for 2 blocks
    minus that for 1 block must be 768 exactly."""
    c1, _, _ = count(cpu, binary, "probe", "q4_K", 1, 20, None)
    c2, _, _ = count(cpu, binary, "probe", "q4_K", 2, 20, None)
    if c2 - c1 != 768:
        sys.exit(f"counting check failed under -cpu {cpu}: {c2} - {c1} != 768 instructions")
    log(f"counting check ({cpu}): probe loop {c1:.0f} / {c2:.0f} instructions per call for 256 / 512 "
        f"iterations: +768 = 3 per iteration, exact; per-call overhead {c1 - 768:.0f}")


# ---- the loop body, for llvm-mca ----

def loop_body(execs, fn_addr, n_weights):
    """One steady-state iteration of the kernel's hottest-level block loop from the trace: the
    executed TBs between two entries of the loop head (the TB that runs fewest times, but at
    least twice, per call). Returns ([(pc, n_insns)], weights per iteration)."""
    entries = [i for i, (pc, _) in enumerate(execs) if pc == fn_addr]
    if len(entries) < 3:
        return None, 0
    call = execs[entries[-3]:entries[-2]]  # a whole call, everything already translated
    counts = collections.Counter(pc for pc, _ in call)
    looped = [pc for pc, c in counts.items() if c >= 2]
    if not looped:
        return None, 0
    head = min(looped, key=lambda pc: (counts[pc], pc))
    idx = [i for i, (pc, _) in enumerate(call) if pc == head]
    j = 1 if len(idx) >= 3 else 0
    body = call[idx[j]:idx[j + 1]]
    # Weights per iteration: a power of two from 32 (the loop head may be entered once by falling
    # into it, so the count can be one short).
    w = 2 ** round(math.log2(n_weights / counts[head]))
    return body, max(32, w)


OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S.*)$")


def disassemble(path, start, stop):
    out = run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", f"--start-address={start:#x}",
               f"--stop-address={stop:#x}", path], stdout=subprocess.PIPE).stdout
    insns = {}
    for line in out.splitlines():
        m = OBJDUMP_LINE.match(line)
        if m:
            insns[int(m.group(1), 16)] = m.group(2)
    return insns


def to_llvm_mc(text):
    """objdump's GNU syntax -> llvm-mc: comments dropped, a branch / literal target
    ('4c6a0 <sym+0x88>') becomes '.' (llvm-mca does not follow branches)."""
    text = text.split("//")[0].strip()
    text = re.sub(r"\b[0-9a-f]+ <[^>]*>", ".", text)
    mnemonic, _, ops = text.partition("\t")
    return f"{mnemonic} {ops.strip()}".strip()


def mca_input(body, fn):
    path, base, _ = fn
    lines = []
    for pc, n in body:
        if pc < base:
            return None
        off = pc - base
        insns = disassemble(path, off, off + 4 * n)
        for k in range(n):
            text = insns.get(off + 4 * k)
            if text is None:
                return None  # outside this file (the trace left it): no clean input
            lines.append(to_llvm_mc(text))
    return lines


def mca_cycles(lines, mcpu):
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        iters = 200
        out = run(["llvm-mca-14", "-mtriple=aarch64", f"-mcpu={mcpu}", "-mattr=+dotprod,+fullfp16",
                   f"-iterations={iters}", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
        return int(re.search(r"Total Cycles:\s+(\d+)", out).group(1)) / iters
    finally:
        os.unlink(path)


# ---- main ----

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-arm-count"))
    ap.add_argument("--blocks", type=int, default=16, help="super-blocks per row (256 weights each)")
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--types", default="q4_K,q5_K,q6_K,q8_0")
    ap.add_argument("--mca-dump", help="folder to write the llvm-mca inputs to")
    args = ap.parse_args()

    args.build = os.path.abspath(args.build)
    binary = build(args.build)
    libs = llama_libs(args.build)
    n_weights = args.blocks * 256
    for cpu, *_ in CPUS:
        calibrate(binary, cpu)

    rows = []
    for typ in args.types.split(","):
        for cpu, variant, libname, table in CPUS:
            lib = os.path.join(libs, libname)
            check = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", cpu, binary, "check", typ,
                                    str(args.blocks), "1", lib], text=True, capture_output=True)
            log(f"-cpu {cpu}: {check.stdout.strip()}")
            if check.returncode != 0 or f"table {table}\n" not in check.stderr:
                sys.exit(f"check failed under -cpu {cpu} (want table {table}):\n{check.stdout}{check.stderr}")
            res = {}
            for engine in ("ours", "llama"):
                per_call, execs, err = count(cpu, binary, engine, typ, args.blocks, args.calls,
                                             lib if engine == "llama" else None)
                fn = fn_info(err)
                body, w = loop_body(execs, fn[2], n_weights) if fn else (None, 0)
                mca = {}
                lines = mca_input(body, fn) if body else None
                if lines:
                    if args.mca_dump:
                        os.makedirs(args.mca_dump, exist_ok=True)
                        with open(os.path.join(args.mca_dump, f"{typ}-{variant}-{engine}.s"), "w") as f:
                            f.write(f"// {len(lines)} instructions, {w} weights per iteration\n")
                            f.write("\n".join(lines) + "\n")
                    for mcpu, _ in MCA_CPUS:
                        mca[mcpu] = mca_cycles(lines, mcpu) * 256 / w
                res[engine] = (per_call / n_weights, mca, len(lines or []) * 256 / max(w, 1))
                log(f"{typ} {variant} {engine}: {per_call:.0f} instructions per call, "
                    f"{per_call / n_weights:.4f} per weight; loop iteration {len(lines or [])} "
                    f"instructions for {w} weights")
            rows.append((typ, variant, res))

    mca_cols = " | ".join(f"{label} ours / llama.cpp" for _, label in MCA_CPUS)
    print(f"| type | ISA (qemu -cpu) | ours instr/weight | llama.cpp instr/weight | ours / llama.cpp | {mca_cols} |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(MCA_CPUS))
    cpu_of = {v: c for c, v, _, _ in CPUS}
    for typ, variant, res in rows:
        (oi, om, _), (li, lm, _) = res["ours"], res["llama"]
        cells = []
        for mcpu, _ in MCA_CPUS:
            if mcpu in om and mcpu in lm:
                cells.append(f"{om[mcpu]:.1f} / {lm[mcpu]:.1f} ({om[mcpu] / lm[mcpu]:.2f})")
            else:
                cells.append("n/a")
        print(f"| {typ} | {variant} ({cpu_of[variant]}) | {oi:.3f} | {li:.3f} | {oi / li:.2f} | "
              + " | ".join(cells) + " |")
    print(f"\nRow of {args.blocks} super-blocks ({n_weights} weights), {args.calls} vs {2 * args.calls} calls; "
          "llvm-mca: cycles per 256 weights of one traced loop iteration (200 iterations simulated).")


if __name__ == "__main__":
    main()
