"""Mutation testing for lstm_core: how many small, deliberate bugs does the test suite catch?

Called by .ci/mutate (see there and docs/reliability.rst, "Mutation testing").

One driver for all three kinds of source (C kernels, Cython boundary, Python training layer),
so every file gets the same catalogue and the scores compare.  The steps:

1. catalogue: lex each target file into code / comment / string, and list every mutation of
   the catalogue at a code position (relational operators, off-by-one bounds and indices,
   swapped operands and arguments, dropped terms, altered constants, removed statements).
   Comments, strings, preprocessor lines, asserts and import/declaration lines are skipped.
2. a scratch copy of the tree (sources only, no .git) under the scratch folder, built in place;
   the pristine compiled modules and generated C are cached beside it.
3. for each mutant: write it into the scratch copy, rebuild incrementally (python: compile
   only), run pytest -x in a fixed order (fast, broad files first) under a timeout, restore the
   source with its old mtime and the pristine modules, and record the outcome.  The tree you
   commit from is never written to; the scratch copy is restored even on Ctrl-C.
4. report: dated JSON (mutation-<date>-<commit>.json) plus a text table, equivalent mutants
   (.ci/mutate-equivalent.txt) folded out of the score.
"""

import argparse
import datetime
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / ".ci" / "mutate-equivalent.txt"
RESULTS_DIR = ROOT / "benchmarks" / "results" / "mutation"

# The three folders of the score and the files that make them.
GROUPS = {
    "src": lambda p: p.startswith("src/") and p.endswith((".c", ".h", ".inc")),
    "boundary": lambda p: p in ("lstm_core/_boundary.pyx", "lstm_core/_lstm.pyx"),
    "training": lambda p: p in ("lstm_core/train.py", "lstm_core/optim.py",
                                "lstm_core/layers.py"),
}

# Test files that run first (basename globs, so moving files into folders keeps the order):
# fast and broad, they exercise every kernel and the training loop in a few seconds.
# The other files follow, fastest first, by the timings of the baseline run.
FIRST = ["test_gates.py", "test_activations.py", "test_fast_vs_reference.py",
         "test_cells_fast_vs_reference.py", "test_train.py", "test_optim.py", "test_layers.py",
         "test_bad_input.py", "test_subnormals.py", "test_saturation.py", "test_c_api.py"]


def group_of(path):
    for name, test in GROUPS.items():
        if test(path):
            return name
    return None


def target_files():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*")
                   if p.is_file() and p.suffix in (".c", ".h", ".inc"))
    files += [p for p in ("lstm_core/_boundary.pyx", "lstm_core/_lstm.pyx", "lstm_core/train.py",
                          "lstm_core/optim.py", "lstm_core/layers.py")]
    return [f for f in files if (ROOT / f).exists()]


# ---------------------------------------------------------------------------------------------
# Lexing: which characters are code (mutable), per language.

def code_mask(text, lang):
    """A list of booleans, True where text[i] is code (not a comment or a string literal)."""
    mask = [True] * len(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if lang == "c" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif lang == "c" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif lang == "py" and c == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"'":
            if lang == "c" and c == "'":
                m = re.compile(r"'(\\.|[^'\\])*'").match(text, i)
                j = m.end() if m else i + 1
            else:
                quote = text[i:i + 3] if lang == "py" and text[i:i + 3] in ('"""', "'''") else c
                j = i + len(quote)
                while j < n and not text.startswith(quote, j):
                    j += 2 if text[j] == "\\" else 1
                    if len(quote) == 1 and j < n and text[j] == "\n":
                        break
                j = min(n, j + len(quote))
                # string prefixes (f, r, b, u) belong to the literal
                k = i
                while k > 0 and text[k - 1] in "fFrRbBuU" and not (text[k - 2:k - 1].isalnum()
                                                                     if k >= 2 else False):
                    k -= 1
                for t in range(k, i):
                    mask[t] = False
        else:
            i += 1
            continue
        for t in range(i, j):
            mask[t] = False
        i = max(j, i + 1)
    return mask


def lang_of(path):
    return "c" if path.endswith((".c", ".h", ".inc")) else "py"


C_DECL = re.compile(r"^\s*(static\s+|const\s+|inline\s+|register\s+|unsigned\s+|struct\s+)*"
                    r"[A-Za-z_]\w*(\s*\*)*\s+\**\s*[A-Za-z_]\w*\s*(=|;|\[|,)")
C_TYPES = re.compile(r"^\s*(static|const|inline|typedef|struct|enum|union|extern|unsigned|"
                     r"void|int|float|double|char|size_t|ptrdiff_t|int\d+_t|uint\d+_t|long|short)\b")
PY_SKIP = re.compile(r"^\s*(import|from|cimport|cdef\s+extern|ctypedef|include|DEF|assert|"
                     r"@|def\s|cpdef\s|class\s|cdef\s+class|global|nonlocal|raise\s|__all__)")


def skipped_lines(text, lang):
    """Line numbers (1-based) whose code is never mutated."""
    skip = set()
    lines = text.split("\n")
    continuation = False
    extern_indent = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if lang == "c":
            if continuation or stripped.startswith("#"):
                skip.add(number)
                continuation = line.rstrip().endswith("\\")
                continue
            if re.search(r"\b(assert|static_assert|_Static_assert)\s*\(", line):
                skip.add(number)
        else:
            indent = len(line) - len(line.lstrip())
            if extern_indent is not None:
                if stripped and indent <= extern_indent:
                    extern_indent = None
                else:
                    skip.add(number)
                    continue
            if re.match(r"^\s*cdef\s+extern", line):
                extern_indent = indent
            if PY_SKIP.match(line):
                skip.add(number)
    return skip


# ---------------------------------------------------------------------------------------------
# The catalogue.

IDENT = r"[A-Za-z_]\w*"
NUMBER = re.compile(r"(?<![\w.])((?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)([fFlLuU]*)(?![\w.])")
RELATIONAL = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}


def operand_left(code, p):
    """Start index of the operand that ends just before position p (skips spaces)."""
    j = p
    while j > 0 and code[j - 1] == " ":
        j -= 1
    end = j
    while j > 0:
        ch = code[j - 1]
        if ch in ")]":
            depth, k = 0, j - 1
            while k >= 0:
                if code[k] in ")]":
                    depth += 1
                elif code[k] in "([":
                    depth -= 1
                    if depth == 0:
                        break
                k -= 1
            if k < 0:
                return None
            j = k
        elif ch.isalnum() or ch in "_.":
            j -= 1
        elif ch == ">" and j >= 2 and code[j - 2] == "-":
            j -= 2
        else:
            break
    return (j, end) if j < end else None


def operand_right(code, p):
    """(start, end) of the operand starting at or after position p (skips spaces)."""
    j = p
    while j < len(code) and code[j] == " ":
        j += 1
    start = j
    while j < len(code):
        ch = code[j]
        if ch in "([":
            depth, k = 0, j
            while k < len(code):
                if code[k] in "([":
                    depth += 1
                elif code[k] in ")]":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            if k >= len(code):
                return None
            j = k + 1
        elif ch.isalnum() or ch in "_.":
            j += 1
        elif code.startswith("->", j):
            j += 2
        else:
            break
    return (start, j) if j > start else None


def float_mutation(number, suffix):
    """An altered constant: ints +1 (0 -> 1, 1 -> 0); exponents +1; floats truncated
    (-87.33654 -> -87.0), whole floats +1 (1.0 -> 2.0)."""
    if re.fullmatch(r"\d+", number):
        value = int(number)
        return str({0: 1, 1: 0}.get(value, value + 1)) + suffix
    if "e" in number.lower():
        mantissa, sep, exponent = re.split(r"([eE])", number)
        return f"{mantissa}{sep}{int(exponent) + 1}{suffix}"
    value = float(number)
    if value != int(value):
        return f"{float(int(value)):.1f}{suffix}"
    return f"{value + 1:.1f}{suffix}"


def line_mutations(line, code_line, lang, line_text_full):
    """Yield (kind, col_start, col_end, new_text) for one line; code_line has non-code blanked."""
    out = []
    # relational operators
    for m in re.finditer(r"<=|>=|==|!=|(?<![<>\-=])<(?![<=])|(?<![<>\-=])>(?![>=])", code_line):
        op = m.group()
        if lang == "py" and op in "<>" and re.match(r"<\s*[A-Za-z_][\w\s*,\[\]:]*>",
                                                    code_line[m.start():]):
            continue  # a Cython cast <double*> x
        if lang == "py" and op in "<>" and re.search(r"<\s*[A-Za-z_][\w\s*]*$", code_line[:m.start()]) \
                and op == ">":
            continue
        out.append(("relational", m.start(), m.end(), RELATIONAL[op]))
    # off-by-one: loop bounds
    if lang == "c":
        m = re.search(r"\bfor\s*\(([^;]*);([^;]*);", code_line)
        if m and re.search(r"<=|>=|<|>|!=", m.group(2)):
            cond_start = m.start(2)
            rel = re.search(r"<=|>=|<|>|!=", m.group(2))
            r = operand_right(code_line, cond_start + rel.end())
            if r:
                bound = code_line[r[0]:r[1]]
                out.append(("off-by-one", r[0], r[1], f"{bound} + 1"))
                out.append(("off-by-one", r[0], r[1], f"{bound} - 1"))
    else:
        for m in re.finditer(r"\brange\(", code_line):
            depth, k, last_arg = 0, m.end() - 1, m.end()
            while k < len(code_line):
                if code_line[k] in "([{":
                    depth += 1
                elif code_line[k] in ")]}":
                    depth -= 1
                    if depth == 0:
                        break
                elif code_line[k] == "," and depth == 1:
                    last_arg = k + 1 if m.end() == last_arg else last_arg
                    break
                k += 1
            # the stop argument: the first argument of range(stop) or the second of range(a, b)
            args = split_args(code_line, m.end() - 1)
            if args:
                idx = 0 if len(args) == 1 else 1
                a, b = args[idx]
                bound = code_line[a:b].strip()
                if bound:
                    a += len(code_line[a:b]) - len(code_line[a:b].lstrip())
                    b = a + len(bound)
                    out.append(("off-by-one", a, b, f"{bound} + 1"))
                    out.append(("off-by-one", a, b, f"{bound} - 1"))
    # off-by-one: indices (simple subscripts, no slices or tuples)
    for m in re.finditer(r"(?<=[\w\]\)])\[([^\[\]:,]+)\]", code_line):
        inner = m.group(1).strip()
        if not inner or inner.startswith(("'", '"')) or not re.search(r"\w", inner):
            continue
        if lang == "py" and re.fullmatch(r"[A-Z_][A-Za-z_0-9]*", inner):
            continue  # a type subscript or constant key
        if re.fullmatch(r"\d+", inner) and lang == "c" and re.search(r"\b(float|double|int|char|size_t)\b",
                                                                     code_line[:m.start()]):
            continue  # an array declaration size
        out.append(("off-by-one", m.start(1), m.end(1), f"{m.group(1)} + 1"))
    # swapped operands and dropped terms of + and - (binary only)
    for m in re.finditer(r"(?<=[\w\)\]]) ?([-+]) (?=[\w(])", code_line):
        op_pos = m.start(1)
        left = operand_left(code_line, op_pos)
        right = operand_right(code_line, op_pos + 1)
        if not left or not right:
            continue
        a, b = code_line[left[0]:left[1]], code_line[right[0]:right[1]]
        if re.fullmatch(r"\d+[.\deE]*[fF]?", b) and not re.fullmatch(r"\d+[.\deE]*[fF]?", a):
            pass
        if m.group(1) == "-":
            out.append(("swap", left[0], right[1], f"{b} - {a}"))
        out.append(("drop-term", left[0], right[1], a))
    # swapped arguments: the first two arguments of a call
    for m in re.finditer(rf"\b({IDENT})\(", code_line):
        if m.group(1) in ("if", "for", "while", "switch", "return", "sizeof", "range", "print",
                          "isinstance", "getattr", "setattr", "hasattr", "len", "int", "float",
                          "str", "tuple", "list", "dict", "zip", "enumerate", "super", "type"):
            continue
        args = split_args(code_line, m.end() - 1)
        if not args or len(args) < 2:
            continue
        (a0, a1), (b0, b1) = args[0], args[1]
        first, second = code_line[a0:a1].strip(), code_line[b0:b1].strip()
        if not first or not second or first == second or "=" in first or "=" in second \
                or "*" in first[:1] or "*" in second[:1]:
            continue
        out.append(("swap-args", a0, b1, f"{second}, {first}"))
    # altered numeric constants
    for m in NUMBER.finditer(code_line):
        if re.search(r"[\w.]$", code_line[:m.start()]):
            continue
        new = float_mutation(m.group(1), m.group(2))
        if new != m.group():
            out.append(("constant", m.start(), m.end(), new))
    # removed statements (one-line expression statements)
    stripped = code_line.strip()
    if lang == "c":
        if (stripped.endswith(";") and "{" not in stripped and "}" not in stripped
                and not C_DECL.match(code_line) and not C_TYPES.match(code_line)
                and not re.match(r"^\s*(return|break|continue|goto|case|default|else)\b", code_line)
                and balanced(stripped)):
            indent = len(code_line) - len(code_line.lstrip())
            out.append(("remove-statement", indent, len(code_line.rstrip()), "/* removed */;"))
    else:
        if (stripped and balanced(stripped) and not stripped.endswith((":", "\\", ","))
                and not re.match(r"^\s*(return|break|continue|pass|yield|cdef|cpdef|else|elif|"
                                 r"try|except|finally|with|for|while|if|def|class|lambda|\)|\]|\})",
                                 code_line)
                and not stripped.startswith(("'", '"', ")", "]", "}"))
                and (re.match(rf"^\s*[\w.\[\], ]+\s*(=|\+=|-=|\*=|/=)[^=]", code_line)
                     or re.match(rf"^\s*[\w.]+\(.*\)\s*$", code_line))):
            indent = len(code_line) - len(code_line.lstrip())
            out.append(("remove-statement", indent, len(code_line.rstrip()), "pass"))
    return out


def balanced(s):
    depth = 0
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def split_args(code, open_paren):
    """[(start, end)] of the top-level arguments of the call whose '(' is at open_paren."""
    depth, start, args = 0, open_paren + 1, []
    for k in range(open_paren, len(code)):
        ch = code[k]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                args.append((start, k))
                return args
        elif ch == "," and depth == 1:
            args.append((start, k))
            start = k + 1
    return None  # the call spans lines


def catalogue(files):
    mutants = []
    for path in files:
        text = (ROOT / path).read_text()
        lang = lang_of(path)
        mask = code_mask(text, lang)
        code = "".join(ch if keep or ch == "\n" else " " for ch, keep in zip(text, mask))
        skip = skipped_lines(code, lang)
        seen = {}
        for number, (line, code_line) in enumerate(zip(text.split("\n"), code.split("\n")), 1):
            if number in skip or not code_line.strip():
                continue
            for kind, a, b, new in line_mutations(line, code_line, lang, text):
                old = line[a:b]
                if old == new:
                    continue
                mutated = line[:a] + new + line[b:]
                key = f"{path}\0{line.strip()}\0{a}\0{old}\0{new}"
                seen[key] = seen.get(key, 0) + 1
                digest = hashlib.sha1(f"{key}\0{seen[key]}".encode()).hexdigest()[:10]
                mutants.append({"id": digest, "file": path, "group": group_of(path),
                                "line": number, "kind": kind, "old": old, "new": new,
                                "original_line": line, "mutated_line": mutated})
    return mutants


def from_spec(spec):
    """A hand-written mutant: FILE:LINE:OLD:NEW (LINE 0 = the first line containing OLD)."""
    path, line, rest = spec.split(":", 2)
    old, new = rest.split("=>", 1) if "=>" in rest else rest.split(":", 1)
    lines = (ROOT / path).read_text().split("\n")
    number = int(line)
    if number == 0:
        number = next(i for i, text in enumerate(lines, 1) if old in text)
    original = lines[number - 1]
    if old not in original:
        raise SystemExit(f"--mutant-spec: {old!r} is not on {path}:{number}: {original!r}")
    mutated = original.replace(old, new, 1)
    digest = hashlib.sha1(f"{path}\0{original.strip()}\0{old}\0{new}\0spec".encode()).hexdigest()[:10]
    return {"id": digest, "file": path, "group": group_of(path), "line": number,
            "kind": "hand-written", "old": old, "new": new, "original_line": original,
            "mutated_line": mutated}


def sample(mutants, n, seed):
    """A seeded sample, stratified: the N mutants are shared evenly among the three folders
    (then among files by their count of mutants), so the small boundary does not vanish."""
    rng = random.Random(seed)
    by_group = {}
    for m in mutants:
        by_group.setdefault(m["group"], []).append(m)
    groups = sorted(by_group)
    share = {g: n // len(groups) for g in groups}
    for g in groups[:n % len(groups)]:
        share[g] += 1
    chosen = []
    for g in groups:
        pool = by_group[g]
        chosen += rng.sample(pool, min(share[g], len(pool)))
    return chosen


def load_equivalent():
    equivalent = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                ident, _, reason = line.partition(" ")
                equivalent[ident] = reason.strip()
    return equivalent


# ---------------------------------------------------------------------------------------------
# The scratch tree.

SYNC_SKIP_DIRS = {".git", "build", "dist", ".hypothesis", ".pytest_cache", "__pycache__",
                  ".venv"}


def is_build_output(rel):
    """Compiled modules and Cython's generated C: the scratch copy builds its own."""
    rel = str(rel)
    return rel.endswith(".so") or (rel.startswith("lstm_core/_") and rel.endswith(".c"))


class Scratch:
    """A copy of the tree under `path` with its own in-place build; mutants go here only."""

    def __init__(self, path, log):
        self.path = Path(path)
        self.tree = self.path / "tree"
        self.pristine = self.path / "pristine"
        self.dirty = self.path / "mutant-in-place"
        self.log = log
        self.env = dict(os.environ, PYTHONPATH=str(self.tree), CI="true",
                        PYTHONDONTWRITEBYTECODE="1")

    def sync(self):
        """Mirror the tree's sources (not .git, builds or generated C) into the scratch copy;
        unchanged files keep their mtimes, so the in-place build stays incremental."""
        self.tree.mkdir(parents=True, exist_ok=True)
        if self.dirty.exists():
            # an earlier run was killed with a mutant in place (SIGKILL, power): its modules
            # may hold the mutant, so build everything again
            for p in self.tree.glob("lstm_core/*"):
                if is_build_output(p.relative_to(self.tree)):
                    p.unlink()
            shutil.rmtree(self.tree / "build", ignore_errors=True)
            self.dirty.unlink()
        wanted = set()
        for dirpath, dirnames, filenames in os.walk(ROOT):
            rel = Path(dirpath).relative_to(ROOT)
            dirnames[:] = [d for d in dirnames if d not in SYNC_SKIP_DIRS
                           and not d.endswith(".egg-info")]
            for name in filenames:
                if is_build_output(rel / name):
                    continue
                wanted.add(rel / name)
                src, dest = ROOT / rel / name, self.tree / rel / name
                st = src.stat()
                if dest.exists():
                    dt = dest.stat()
                    if dt.st_size == st.st_size and dt.st_mtime_ns == st.st_mtime_ns:
                        continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        for dirpath, dirnames, filenames in os.walk(self.tree):
            rel = Path(dirpath).relative_to(self.tree)
            dirnames[:] = [d for d in dirnames if d not in SYNC_SKIP_DIRS]
            for name in filenames:
                if (rel / name) not in wanted and not is_build_output(rel / name):
                    (self.tree / rel / name).unlink()
        # generated C and modules from the worktree are not trusted: the build decides
        built, seconds, log = self.build()
        if not built:
            raise SystemExit(f"the unmutated scratch tree does not build:\n{log[-3000:]}")
        self.log(f"built in {seconds:.0f} s")
        if self.pristine.exists():
            shutil.rmtree(self.pristine)
        self.pristine.mkdir()
        for p in self.built_files():
            shutil.copy2(p, self.pristine / p.name)

    def built_files(self):
        pkg = self.tree / "lstm_core"
        return sorted(list(pkg.glob("*.so")) + [p for p in pkg.glob("_*.c")])

    def build(self):
        start = time.time()
        result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
                                cwd=self.tree, env=self.env, capture_output=True, text=True)
        return result.returncode == 0, time.time() - start, result.stdout + result.stderr

    def restore(self, path, original_text, original_stat):
        target = self.tree / path
        target.write_text(original_text)
        os.utime(target, ns=(original_stat.st_atime_ns, original_stat.st_mtime_ns))
        # setuptools builds in build/lib.*/ and copies into lstm_core/; it rebuilds a module when
        # a source is newer than the copy in build/lib.*/, so both get the pristine module with
        # a fresh mtime (and Cython's generated C too)
        now = time.time()
        lib_dirs = [d / "lstm_core" for d in (self.tree / "build").glob("lib.*")]
        for p in self.pristine.iterdir():
            dests = [self.tree / "lstm_core" / p.name]
            if p.suffix == ".so":
                dests += [d / p.name for d in lib_dirs if d.is_dir()]
            for dest in dests:
                shutil.copyfile(p, dest)
                os.utime(dest, (now, now))
        # objects compiled from a mutant must never link into a later module (distutils
        # compiles every source of a module it rebuilds, but no stale object is left to chance)
        for temp in (self.tree / "build").glob("temp.*"):
            shutil.rmtree(temp, ignore_errors=True)
        self.dirty.unlink(missing_ok=True)


def run_pytest(scratch, files, timeout, extra):
    """(outcome, first failing test, seconds)."""
    junit = scratch.path / "junit.xml"
    if junit.exists():
        junit.unlink()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-o", "addopts=--import-mode=importlib --strict-markers", "-rfE",
           "-o", "junit_family=xunit1",
           f"--junitxml={junit}"] + extra + files
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=scratch.tree, env=scratch.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", None, time.time() - start, ""
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    seconds = time.time() - start
    if proc.returncode == 0:
        return "survived", None, seconds, out
    first = None
    for line in out.splitlines():
        m = re.match(r"^(FAILED|ERROR) (\S+)", line)
        if m:
            first = m.group(2)
            break
    if first is None and proc.returncode < 0:
        first = f"(crash: signal {-proc.returncode})"
    elif first is None:
        tail = [l for l in out.splitlines() if l.strip()][-3:]
        first = f"(pytest exit {proc.returncode}: {' | '.join(tail)[:300]})"
    return "killed", first, seconds, out


def test_order(scratch, durations):
    """Test files, fast and broad first (FIRST), then by baseline time, fastest first."""
    files = sorted(str(p.relative_to(scratch.tree)) for p in (scratch.tree / "tests").rglob("test_*.py"))
    rank = {name: i for i, name in enumerate(FIRST)}

    def key(f):
        base = os.path.basename(f)
        if base in rank:
            return (0, rank[base], 0.0)
        return (1, 0, durations.get(f, 1e9))
    return sorted(files, key=key)


def file_durations(junit):
    """Seconds per test file, from a junit file written with junit_family=xunit1."""
    durations = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            path = case.get("file")
            if path:
                durations[path] = durations.get(path, 0.0) + float(case.get("time", 0))
    return durations


# ---------------------------------------------------------------------------------------------
# Reporting.

def context(path, line, mutated_line, radius=2):
    lines = (ROOT / path).read_text().split("\n")
    lo, hi = max(1, line - radius), min(len(lines), line + radius)
    out = []
    for n in range(lo, hi + 1):
        if n == line:
            out.append(f"{n:5d} - {lines[n - 1]}")
            out.append(f"{n:5d} + {mutated_line}")
        else:
            out.append(f"{n:5d}   {lines[n - 1]}")
    return out


def score(rows):
    killed = sum(r["outcome"] in ("killed", "timeout") for r in rows)
    survived = sum(r["outcome"] == "survived" for r in rows)
    counted = killed + survived
    return {"killed": sum(r["outcome"] == "killed" for r in rows),
            "timeout": sum(r["outcome"] == "timeout" for r in rows),
            "survived": survived,
            "build_failure": sum(r["outcome"] == "build-failure" for r in rows),
            "equivalent": sum(r["outcome"] == "equivalent" for r in rows),
            "score": round(killed / counted, 4) if counted else None}


def table(report):
    lines = [f"mutation testing, {report['date']}, commit {report['commit']}, "
             f"{len(report['mutants'])} mutants"
             + (f" (sample {report['sample']}, seed {report['seed']})" if report.get("sample") else "")
             + (f"; test files left out: {' '.join(report['skip_tests'])}"
                if report.get("skip_tests") else ""),
             "", f"{'scope':40s} {'killed':>6s} {'t/o':>4s} {'surv':>5s} {'build':>5s} "
                 f"{'equiv':>5s} {'score':>6s}"]

    def row(name, s):
        sc = "-" if s["score"] is None else f"{100 * s['score']:.0f}%"
        return (f"{name:40s} {s['killed']:6d} {s['timeout']:4d} {s['survived']:5d} "
                f"{s['build_failure']:5d} {s['equivalent']:5d} {sc:>6s}")
    for name, s in report["by_folder"].items():
        lines.append(row(name + "/", s))
    lines.append("")
    for name, s in report["by_file"].items():
        lines.append(row(name, s))
    lines.append("")
    lines.append(row("total", report["total"]))
    lines.append("(score = (killed + timeouts) / (killed + timeouts + survived); build failures "
                 "and equivalent mutants are not counted)")
    survivors = [m for m in report["mutants"] if m["outcome"] == "survived"]
    if survivors:
        lines.append("")
        lines.append("survivors:")
        for m in survivors:
            lines.append(f"  {m['id']}  {m['file']}:{m['line']}  {m['kind']}: "
                         f"{m['old']!r} -> {m['new']!r}")
            lines += ["      " + c for c in m["context"]]
    c = report.get("cost")
    if c:
        lines.append("")
        lines.append(f"cost per mutant: build {c['build_median_s']:.1f} s, tests "
                     f"{c['tests_median_s']:.1f} s (medians); whole run {c['total_s']:.0f} s; "
                     f"baseline suite {c['baseline_tests_s']:.0f} s")
    return "\n".join(lines) + "\n"


def head_commit():
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "unknown"


def build_report(rows, args, commit, baseline_seconds, total_seconds):
    by_file, by_folder = {}, {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
        by_folder.setdefault(r["group"] or "other", []).append(r)
    builds = sorted(r["build_s"] for r in rows if r.get("build_s") is not None)
    tests = sorted(r["tests_s"] for r in rows if r.get("tests_s") is not None)
    median = lambda v: v[len(v) // 2] if v else 0.0
    return {
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "python": sys.version.split()[0],
        "sample": args.sample, "seed": args.seed, "files": args.files,
        "mutant_spec": args.mutant_spec or None, "kinds": args.kinds,
        "timeout_s": round(args.timeout, 1),
        "tests": args.tests, "skip_tests": args.skip_tests or None,
        "by_folder": {k: score(v) for k, v in sorted(by_folder.items())},
        "by_file": {k: score(v) for k, v in sorted(by_file.items())},
        "total": score(rows),
        "cost": {"build_median_s": median(builds), "tests_median_s": median(tests),
                 "baseline_tests_s": baseline_seconds, "total_s": total_seconds},
        "mutants": rows,
    }


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--sample", type=int, help="a seeded random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--files", nargs="+", help="only files whose path contains one of these")
    parser.add_argument("--kinds", nargs="+", help="only these kinds of mutation")
    parser.add_argument("--mutant-spec", action="append", default=[], metavar="FILE:LINE:OLD=>NEW",
                        help="run this hand-written mutant (LINE 0: the first line with OLD); "
                             "repeatable; replaces the catalogue")
    parser.add_argument("--ids", nargs="+", help="only the catalogue mutants with these ids")
    parser.add_argument("--timeout", type=float, default=None,
                        help="per-mutant test timeout in s (default 2 x baseline + 60)")
    parser.add_argument("--scratch", default="/tmp/lstm-core-mutate",
                        help="scratch folder (a copy of the tree, built in place)")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON and table")
    parser.add_argument("--name", default="", help="suffix of the result files (e.g. smoke)")
    parser.add_argument("--tests", nargs="+", help="test files to run instead of the whole suite")
    parser.add_argument("--skip-tests", nargs="+", default=[], metavar="GLOB",
                        help="leave out test files whose name matches (e.g. 'test_*threads*' "
                             "'test_memory.py': faster, but a weaker suite; the report says so)")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments (one string)")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="trust the unmutated suite to pass (no timing: needs --timeout)")
    args = parser.parse_args()

    if args.mutant_spec:
        mutants = [from_spec(s) for s in args.mutant_spec]
    else:
        files = target_files()
        if args.files:
            files = [f for f in files if any(s in f for s in args.files)]
        mutants = catalogue(files)
        if args.kinds:
            mutants = [m for m in mutants if m["kind"] in args.kinds]
        if args.ids:
            mutants = [m for m in mutants if m["id"] in args.ids]
        if args.sample:
            mutants = sample(mutants, args.sample, args.seed)
    if args.list:
        for m in mutants:
            print(f"{m['id']}  {m['file']}:{m['line']}  {m['kind']:16s} {m['old']!r} -> {m['new']!r}")
        counts = {}
        for m in mutants:
            counts[m["group"]] = counts.get(m["group"], 0) + 1
        print(f"# {len(mutants)} mutants: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
              file=sys.stderr)
        return 0

    # SIGTERM (a scheduler ending the job) unwinds like Ctrl-C: the scratch copy is restored
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    equivalent = load_equivalent()
    commit = head_commit()  # the commit whose sources are copied, named in the report
    scratch = Scratch(args.scratch, print)
    started = time.time()
    print(f"scratch tree {scratch.tree}: copying and building ...", flush=True)
    scratch.sync()
    check = subprocess.run([sys.executable, "-c", "import lstm_core; print(lstm_core.__file__)"],
                           cwd="/", env=scratch.env, capture_output=True, text=True)
    if not check.stdout.strip().startswith(str(scratch.tree)):
        raise SystemExit(f"the scratch tree does not shadow the installed package: {check.stdout}"
                         f"{check.stderr}")
    extra = args.pytest_args.split() if args.pytest_args else []
    durations_file = scratch.path / "durations.json"
    baseline_seconds = 0.0
    if args.tests:
        order = args.tests
    else:
        durations = json.loads(durations_file.read_text()) if durations_file.exists() else {}
        order = test_order(scratch, durations)
    skip = lambda files: [f for f in files
                          if not any(fnmatch.fnmatch(os.path.basename(f), g) for g in args.skip_tests)]
    order = skip(order)
    if not args.skip_baseline:
        print("baseline: the unmutated suite ...", flush=True)
        outcome, first, baseline_seconds, out = run_pytest(scratch, order, 3600, extra)
        if outcome != "survived":
            print(out[-3000:])
            raise SystemExit(f"the unmutated suite fails ({first}): fix or deselect first")
        if not args.tests:
            durations_file.write_text(json.dumps(file_durations(scratch.path / "junit.xml")))
            order = skip(test_order(scratch, json.loads(durations_file.read_text())))
        print(f"baseline passes in {baseline_seconds:.0f} s", flush=True)
    timeout = args.timeout or (2 * baseline_seconds + 60 if baseline_seconds else 900)
    args.timeout = timeout

    rows = []
    try:
        for number, m in enumerate(mutants, 1):
            row = {k: m[k] for k in ("id", "file", "group", "line", "kind", "old", "new")}
            row["context"] = context(m["file"], m["line"], m["mutated_line"])
            if m["id"] in equivalent:
                row.update(outcome="equivalent", reason=equivalent[m["id"]])
                rows.append(row)
                continue
            target = scratch.tree / m["file"]
            original = target.read_text()
            stat = target.stat()
            lines = original.split("\n")
            assert lines[m["line"] - 1] == m["original_line"], "the scratch tree is out of date"
            lines[m["line"] - 1] = m["mutated_line"]
            try:
                scratch.dirty.write_text(m["file"])
                target.write_text("\n".join(lines))
                later = time.time() + 2
                os.utime(target, (later, later))
                if m["file"].endswith(".py"):
                    t0 = time.time()
                    ok = subprocess.run([sys.executable, "-m", "py_compile", str(target)],
                                        capture_output=True, text=True, env=scratch.env)
                    built, build_s, build_log = ok.returncode == 0, time.time() - t0, ok.stderr
                else:
                    built, build_s, build_log = scratch.build()
                    if built and m["file"].endswith(".c"):
                        # a .c that no module compiles (lstm_plain.c: the C test builds it)
                        # must still compile, or its failing test is a build failure
                        t0 = time.time()
                        check = subprocess.run(
                            ["gcc", "-std=c99", "-fsyntax-only", "-Werror=implicit-function-declaration"]
                            + [f"-I{scratch.tree / d}" for d in ("src/include", "src/kernels",
                                                                   "src/gemm", "src/threads")]
                            + [str(target)], capture_output=True, text=True)
                        built, build_log = check.returncode == 0, check.stderr
                        build_s += time.time() - t0
                row["build_s"] = round(build_s, 1)
                if not built:
                    row.update(outcome="build-failure",
                               build_error=[l for l in build_log.splitlines()
                                            if "error" in l.lower()][:3])
                else:
                    outcome, first, tests_s, _ = run_pytest(scratch, order, timeout, extra)
                    row.update(outcome=outcome, tests_s=round(tests_s, 1))
                    if first:
                        row["first_failure"] = first
            finally:
                scratch.restore(m["file"], original, stat)
            rows.append(row)
            print(f"[{number}/{len(mutants)}] {row['outcome']:13s} {m['file']}:{m['line']} "
                  f"{m['kind']} {m['old']!r} -> {m['new']!r}  build {row.get('build_s', 0)} s, "
                  f"tests {row.get('tests_s', 0)} s  {row.get('first_failure', '')}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the scratch tree is restored; reporting the mutants run so far")
    report = build_report(rows, args, commit, round(baseline_seconds, 1), round(time.time() - started, 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"mutation-{report['date']}-{report['commit']}" + (f"-{args.name}" if args.name else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    text = table(report)
    (out / f"{stem}.txt").write_text(text)
    print(text)
    print(f"written: {out / stem}.json and .txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
