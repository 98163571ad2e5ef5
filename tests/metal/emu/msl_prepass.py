#!/usr/bin/env python3
"""The Metal emulator's prepass (test builds only; docs/METAL.md, "The emulator").

Rewrites one .metal file into a C++ translation unit that g++ compiles against msl_shim.hpp:
  - the [[...]] attributes of kernel parameters are removed (and remembered for the launcher);
  - read-only swizzles `v.xy` (2-4 letters of xyzw) become method calls `v.xy()`;
  - includes are kept (<metal_stdlib> comes from tests/metal/emu/include, quoted ones from the
    shaders' directory on the include path);
  - the source sits in its own namespace (edgellm_msl_<id>), so helpers of different files never
    collide at link time;
  - for every `kernel void NAME(...) {` (the only kernel form: docs/METAL.md rule 1) a launcher
    binds the parameters from a dispatch (buffers, argument bytes, threadgroup memory, position
    attributes), and a function register_kernels_<id>() registers them under NAME.
Line numbers are kept (removed text becomes spaces; a #line directive names the .metal file), so
compiler errors and the runtime's call sites point into the .metal file.

A kernel form, attribute or parameter it cannot model is an error "file:line: error: ...", which
fails the build. No dependencies beyond the Python 3 standard library.

usage: msl_prepass.py INPUT.metal OUTPUT.cpp ID
"""
import os
import re
import sys

POSITION_ATTRS = {
    "thread_position_in_grid": "kThreadPositionInGrid",
    "thread_position_in_threadgroup": "kThreadPositionInThreadgroup",
    "threadgroup_position_in_grid": "kThreadgroupPositionInGrid",
    "threads_per_threadgroup": "kThreadsPerThreadgroup",
    "threadgroups_per_grid": "kThreadgroupsPerGrid",
    "thread_index_in_threadgroup": "kThreadIndexInThreadgroup",
    "thread_index_in_simdgroup": "kThreadIndexInSimdgroup",
    "simdgroup_index_in_threadgroup": "kSimdgroupIndexInThreadgroup",
    "threads_per_simdgroup": "kThreadsPerSimdgroup",
    "simdgroups_per_threadgroup": "kSimdgroupsPerThreadgroup",
}
POSITION_TYPES = {"uint", "ushort", "uint2", "uint3", "ushort2", "ushort3"}
ADDRESS_SPACES = ("device", "constant", "threadgroup", "thread")


class PrepassError(Exception):
    pass


def mask_code(src):
    """src with comments, string and char literals replaced by spaces (newlines kept): offsets
    and lines stay those of src, and nothing inside a comment or literal is rewritten."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            for k in range(i + 1, j - 1):
                out[k] = " "
            i = j
        else:
            i += 1
    return "".join(out)


def line_of(src, pos):
    return src.count("\n", 0, pos) + 1


def matching(code, open_pos):
    """Index of the bracket closing the one at open_pos."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[code[open_pos]]]
    i = open_pos + 1
    while i < len(code):
        c = code[i]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if c != stack[-1]:
                return -1
            stack.pop()
            if not stack:
                return i
        i += 1
    return -1


def split_params(code, begin, end):
    """(start, end) spans of the top-level comma-separated parameters in code[begin:end]."""
    spans, depth, start = [], 0, begin
    for i in range(begin, end):
        c = code[i]
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        elif c == "," and depth == 0:
            spans.append((start, i))
            start = i + 1
    if code[start:end].strip():
        spans.append((start, end))
    return spans


def strip_spaces(t):
    return re.sub(r"\s+", " ", t).strip()


def plain_type(t):
    """The C++ type name without MSL address spaces, for messages."""
    words = [w for w in re.split(r"\s+", t.replace("&", " ").replace("*", " ")) if w and w not in ADDRESS_SPACES]
    return " ".join(words)


def parse_kernel(src, code, kpos, path):
    """Returns (kernel dict, list of (start, end) attribute spans to blank)."""
    where = "%s:%d" % (path, line_of(src, kpos))
    m = re.compile(r"kernel\s+void\s+([A-Za-z_]\w*)\s*\(").match(code, kpos)
    if not m:
        raise PrepassError("%s: error: unsupported kernel form: a kernel is `kernel void NAME(...) {` "
                           "(docs/METAL.md rule 1)" % where)
    before = code[:kpos].rstrip()
    if before.endswith(">") or before.endswith("]]"):
        raise PrepassError("%s: error: kernel %s: template kernels and attributes before `kernel` are not "
                           "modelled (docs/METAL.md rule 1)" % (where, m.group(1)))
    name = m.group(1)
    open_pos = m.end() - 1
    close = matching(code, open_pos)
    if close < 0:
        raise PrepassError("%s: error: kernel %s: unbalanced parameter list" % (where, name))
    rest = code[close + 1:].lstrip()
    if not rest.startswith("{"):
        raise PrepassError("%s: error: kernel %s: expected its body `{` after the parameters (a kernel is "
                           "defined where it is declared)" % (where, name))
    params, blanks, buffers = [], [], set()
    has_tg = False
    for (b, e) in split_params(code, open_pos + 1, close):
        text = code[b:e]
        pwhere = "%s:%d" % (path, line_of(src, b + len(text) - len(text.lstrip())))
        am = re.search(r"\[\[(.*?)\]\]", text, re.S)
        if not am:
            raise PrepassError("%s: error: kernel %s: parameter `%s` has no attribute ([[buffer(i)]], "
                               "[[threadgroup(0)]] or a position attribute)" % (pwhere, name, strip_spaces(text)))
        attr = strip_spaces(am.group(1))
        blanks.append((b + am.start(), b + am.end()))
        decl = strip_spaces(text[:am.start()] + " " + text[am.end():])
        dm = re.match(r"^(.*?)([A-Za-z_]\w*)$", decl)
        if not dm or not dm.group(1).strip():
            raise PrepassError("%s: error: kernel %s: cannot parse parameter `%s`" % (pwhere, name, decl))
        ptype, pname = dm.group(1).strip(), dm.group(2)
        bm = re.fullmatch(r"buffer\(\s*(\d+)\s*\)", attr)
        tm = re.fullmatch(r"threadgroup\(\s*(\d+)\s*\)", attr)
        if bm:
            idx = int(bm.group(1))
            if idx > 8:
                raise PrepassError("%s: error: kernel %s: [[buffer(%d)]]: at most buffer(8) (device.hpp's "
                                   "kMaxBindings)" % (pwhere, name, idx))
            if idx in buffers:
                raise PrepassError("%s: error: kernel %s: buffer(%d) bound twice" % (pwhere, name, idx))
            buffers.add(idx)
            if ptype.endswith("&"):
                kind = "ref"
            elif "*" in ptype:
                kind = "ptr"
            else:
                raise PrepassError("%s: error: kernel %s: [[buffer(%d)]] parameter `%s` is neither a pointer nor "
                                   "a reference" % (pwhere, name, idx, decl))
            params.append({"kind": "buffer", "index": idx, "ref": kind == "ref", "type": ptype, "name": pname})
        elif tm:
            idx = int(tm.group(1))
            if idx != 0 or has_tg:
                raise PrepassError("%s: error: kernel %s: only one [[threadgroup(0)]] parameter is modelled "
                                   "(docs/METAL.md rule 3)" % (pwhere, name))
            if "*" not in ptype:
                raise PrepassError("%s: error: kernel %s: [[threadgroup(0)]] parameter `%s` is not a pointer"
                                   % (pwhere, name, decl))
            has_tg = True
            params.append({"kind": "tg", "type": ptype, "name": pname})
        elif attr in POSITION_ATTRS:
            if ptype not in POSITION_TYPES:
                raise PrepassError("%s: error: kernel %s: [[%s]] parameter of type `%s`: the emulator binds "
                                   "uint, ushort, uint2, uint3, ushort2 or ushort3" % (pwhere, name, attr, ptype))
            params.append({"kind": "attr", "attr": POSITION_ATTRS[attr], "type": ptype, "name": pname})
        else:
            raise PrepassError("%s: error: kernel %s: unknown or unmodelled attribute [[%s]]" % (pwhere, name, attr))
    return {"name": name, "line": line_of(src, kpos), "params": params, "has_tg": has_tg,
            "buffers": sorted(buffers)}, blanks


# MSL's half literals (1.0h, 2.5e-3H) are not C++: they become ((half)(1.0f)).
HALF_LITERAL = re.compile(r"(?<![\w.])(\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)[hH](?!\w)")


SWIZZLE = re.compile(r"(\.|->)([xyzw]{2,4})(?![A-Za-z0-9_])")


def swizzle_inserts(code):
    """Offsets after each read-only swizzle, where "()" goes."""
    out = []
    for m in SWIZZLE.finditer(code):
        start = m.start()
        j = start
        while j > 0 and (code[j - 1].isalnum() or code[j - 1] == "_"):
            j -= 1
        if m.group(1) == "." and j < start and code[j].isdigit():
            continue  # part of a number
        if m.group(1) == "." and j == start and start > 0 and not code[start - 1] in ")]":
            # `.xy` after neither an expression nor an identifier (e.g. a designated initializer `.xy =`)
            k = start - 1
            while k >= 0 and code[k] in " \t":
                k -= 1
            if k < 0 or not (code[k].isalnum() or code[k] in "_)]"):
                continue
        k = m.end()
        while k < len(code) and code[k] in " \t\r\n":
            k += 1
        if k < len(code) and code[k] == "(":
            continue  # already a call
        out.append(m.end())
    return out


def check_threadgroup_variables(src, code, path):
    """Rule 3: threadgroup memory only through [[threadgroup(0)]]; a `threadgroup` variable (not a
    pointer or reference) declared in a function would be per-thread in the emulator."""
    for m in re.finditer(r"\bthreadgroup\b(?!\s*\()", code):
        k = m.end()
        while k < len(code) and code[k] not in ";,)=[{":
            k += 1
        decl = code[m.end():k]
        if "*" not in decl and "&" not in decl:
            raise PrepassError("%s:%d: error: a threadgroup variable `threadgroup%s`: threadgroup memory comes "
                               "only through the [[threadgroup(0)]] parameter (docs/METAL.md rule 3)"
                               % (path, line_of(src, m.start()), strip_spaces(decl) and " " + strip_spaces(decl)))


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def launcher(k):
    args = []
    for p in k["params"]:
        t = p["type"]
        if p["kind"] == "buffer":
            if p["ref"]:
                base = "::std::remove_reference_t<%s>" % t
                if p["index"] == 0:
                    args.append("*(%s*)t.args_ref(uint32_t(sizeof(%s)), %s)" % (base, base, c_string(plain_type(t))))
                else:
                    args.append("*(%s*)t.buffer(%d)" % (base, p["index"]))
            elif p["index"] == 0:
                args.append("(%s)t.launch->args" % t)
            else:
                args.append("(%s)t.buffer(%d)" % (t, p["index"]))
        elif p["kind"] == "tg":
            args.append("(%s)t.tg_mem()" % t)
        else:
            args.append("::edgellm::metal_emu::attr_value<%s>(t.attr[::edgellm::metal_emu::%s])" % (t, p["attr"]))
    body = ",\n      ".join(args)
    return "static void emu_launch_%s(::edgellm::metal_emu::ThreadCtx& t) {\n  %s(\n      %s);\n}\n" % (
        k["name"], k["name"], body)


def convert(src, path, out_path, ident):
    code = mask_code(src)
    if re.search(r"\[\[\s*host_name", code):
        raise PrepassError("%s:%d: error: [[host_name]] is not modelled: a kernel's function name is its host name "
                           "(docs/METAL.md rule 1)" % (path, line_of(src, re.search(r"\[\[\s*host_name", code).start())))
    kernels, blanks = [], []
    for m in re.finditer(r"\bkernel\b", code):
        k, b = parse_kernel(src, code, m.start(), path)
        kernels.append(k)
        blanks.extend(b)
    check_threadgroup_variables(src, code, path)

    text = list(src)
    for (b, e) in blanks:
        for i in range(b, e):
            if text[i] != "\n":
                text[i] = " "
    inserts = set(swizzle_inserts(code))
    pieces, last = [], 0
    halfs = {m.start(): m for m in HALF_LITERAL.finditer(code)}
    i = 0
    n = len(text)
    while i < n:
        m = halfs.get(i)
        if m:
            pieces.append("((half)(%sf))" % src[m.start(1):m.end(1)])
            i = m.end()
        else:
            pieces.append(text[i])
            i += 1
        if i in inserts:
            pieces.append("()")
    body = "".join(pieces)
    if not body.endswith("\n"):
        body += "\n"

    ns = "edgellm_msl_" + ident
    head = ("// Generated by tests/metal/emu/msl_prepass.py from %s: do not edit.\n"
            "#include \"msl_shim.hpp\"\n"
            "namespace %s {\n"
            "#line 1 %s\n" % (os.path.basename(path), ns, c_string(path)))
    tail_lines = []
    for k in kernels:
        tail_lines.append(launcher(k))
    reg = ["void emu_register(::edgellm::metal_emu::KernelRegistry& r) {"]
    for k in kernels:
        ref = [p for p in k["params"] if p["kind"] == "buffer" and p["index"] == 0 and p["ref"]]
        mask = 0
        for i in k["buffers"]:
            if i >= 1:
                mask |= 1 << i
        reg.append("  {")
        reg.append("    ::edgellm::metal_emu::KernelInfo k;")
        reg.append("    k.name = %s;" % c_string(k["name"]))
        reg.append("    k.launch = &emu_launch_%s;" % k["name"])
        reg.append("    k.file = %s;" % c_string(os.path.basename(path)))
        reg.append("    k.line = %d;" % k["line"])
        if ref:
            reg.append("    k.args_bytes = uint32_t(sizeof(::std::remove_reference_t<%s>));" % ref[0]["type"])
            reg.append("    k.args_by_ref = true;")
        reg.append("    k.buffer_mask = 0x%xu;" % mask)
        reg.append("    k.uses_tg_memory = %s;" % ("true" if k["has_tg"] else "false"))
        reg.append("    r.add(k);")
        reg.append("  }")
    reg.append("}")
    tail = "\n".join(tail_lines) + "\n".join(reg) + "\n"
    tail += "}  // namespace %s\n\n" % ns
    tail += ("namespace edgellm::metal_emu {\n"
             "void register_kernels_%s(KernelRegistry& r);\n"
             "void register_kernels_%s(KernelRegistry& r) { ::%s::emu_register(r); }\n"
             "}  // namespace edgellm::metal_emu\n" % (ident, ident, ns))
    out_line = head.count("\n") + body.count("\n") + 2
    return head + body + "#line %d %s\n" % (out_line, c_string(out_path)) + tail


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: msl_prepass.py INPUT.metal OUTPUT.cpp ID\n")
        return 2
    path, out_path, ident = argv[1], argv[2], argv[3]
    if not re.fullmatch(r"[A-Za-z_]\w*", ident):
        sys.stderr.write("msl_prepass.py: ID must be an identifier, not %r\n" % ident)
        return 2
    try:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        out = convert(src, path, out_path, ident)
    except PrepassError as e:
        sys.stderr.write(str(e) + "\n")
        return 1
    except (OSError, UnicodeDecodeError) as e:
        sys.stderr.write("%s: error: %s\n" % (path, e))
        return 1
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(out)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
