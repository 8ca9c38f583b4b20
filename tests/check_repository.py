#!/usr/bin/env python3
"""Repository checks that no compiler makes (run by `make test`):

1. Nothing in the repository points outside it (no path to files kept next
   to a checkout, which users who clone the repository do not have).
2. Every section reference in code and docs — written `docs/<file>.md §<id>` —
   resolves to a heading of that file whose first token is `<id>`
   (e.g. `### D6. Cross-state pairs` has id `D6`).
3. No shipped binary (the Lambdas) links the dataset generator or the test
   support crate: `cargo tree -e normal` of each Lambda package must not list
   `thaw-devdata` or `thaw-test-support`.
4. Every verified defect of the legacy tool (`### L<n>.` in docs/sync.md §12)
   has a test named after it (a Rust or Python test whose name starts with
   `l<n>_`, possibly after other numbers: `l4_l12_…`), or its entry says
   plainly that it has none ("No test:" / "Not yet covered by a test"); every
   test the section names in backquotes with such a prefix exists.
5. Every file of a test directory built as one binary (`autotests = false`:
   functions/engine/tests, functions/thaw/tests) is a module of its
   `integration.rs`: a file left out would never be compiled or run.

Exit 0 when clean; otherwise print every problem and exit 1.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAMBDAS = ["plan", "copy-chunk", "merge", "reconcile", "conflict-create", "fail-run", "schema-migrate"]
TEXT_SUFFIXES = (".rs", ".ts", ".py", ".sh", ".sql", ".md", ".json", ".toml", ".mk", "Makefile", ".yml", ".yaml")
# Paths of files kept next to a checkout, which users never have (spelled in
# two parts so this file does not match itself).
OUTSIDE_MARKERS = ("../" "shared", "shared/" "docs", "shared/" "seeds")
REF = re.compile(r"docs/([a-z_\-]+\.md)`?,?\s*(?:section\s*)?§\s*([A-Za-z]*[0-9][0-9A-Za-z.]*[0-9A-Za-z]|[A-Za-z][0-9]+)")


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if "node_modules/" in line or line.startswith("infra/cdk.out"):
            continue
        if line.endswith(TEXT_SUFFIXES) and os.path.isfile(os.path.join(ROOT, line)):
            yield line


def heading_ids(path):
    ids = set()
    with open(path, encoding="utf-8") as f:
        in_code = False
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
            if in_code or not line.startswith("#"):
                continue
            words = line.lstrip("#").split()
            if words:
                ids.add(words[0].rstrip(".:"))
    return ids


DEFECT_TEST = re.compile(r"^\s*(?:async\s+)?(?:fn|def)\s+((?:l\d+_)+)([a-z0-9_]*)", re.M)


def legacy_defect_tests():
    """Check 4: each `### L<n>.` entry of docs/sync.md §12 has its test."""
    numbered = {}
    for rel in tracked_files():
        if rel.endswith((".rs", ".py")):
            text = open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace").read()
            for m in DEFECT_TEST.finditer(text):
                name = m.group(1) + m.group(2)
                for n in re.findall(r"l(\d+)_", m.group(1)):
                    numbered.setdefault(int(n), set()).add(name)
    names = set().union(*numbered.values()) if numbered else set()
    text = open(os.path.join(ROOT, "docs", "sync.md"), encoding="utf-8").read()
    start = text.find("## 12. Verified defects of the legacy tool")
    end = text.find("\n## ", start + 1)
    if start < 0:
        return ["docs/sync.md: section 12 (verified defects of the legacy tool) is missing"]
    problems = []
    for m in re.finditer(r"^### L(\d+)\.(.*?)(?=^### |\Z)", text[start:end], re.M | re.S):
        n, body = int(m.group(1)), m.group(2)
        if n not in numbered and "No test:" not in body and "Not yet covered by a test" not in body:
            problems.append(f"docs/sync.md §12 L{n}: no test named l{n}_… and the entry does not say why")
        for cited in re.findall(r"`((?:l\d+_)+[a-z0-9_]*)`", body):
            if cited not in names:
                problems.append(f"docs/sync.md §12 L{n} names test {cited}, which does not exist")
    return problems


# Test directories whose files are modules of one binary (check 5).
ONE_BINARY_TEST_DIRS = ["functions/engine/tests", "functions/thaw/tests"]
MOD_DECLARATION = re.compile(r"^mod ([a-z0-9_]+);", re.M)


def test_modules_declared():
    """Check 5: each `*.rs` of a one-binary test directory is declared in its `integration.rs`."""
    problems = []
    for rel in ONE_BINARY_TEST_DIRS:
        root = os.path.join(ROOT, rel, "integration.rs")
        if not os.path.isfile(root):
            problems.append(f"{rel}/integration.rs is missing (its Cargo.toml builds the directory as one test binary)")
            continue
        declared = set(MOD_DECLARATION.findall(open(root, encoding="utf-8").read()))
        present = {f[:-3] for f in os.listdir(os.path.join(ROOT, rel)) if f.endswith(".rs") and f != "integration.rs"}
        for name in sorted(present - declared):
            problems.append(f"{rel}/{name}.rs is not a module of {rel}/integration.rs: add `mod {name};` there, or it never runs")
        for name in sorted(declared - present):
            problems.append(f"{rel}/integration.rs declares `mod {name};` but {rel}/{name}.rs does not exist")
    return problems


def main():
    problems = []
    docs = {}
    this = os.path.relpath(__file__, ROOT)
    for rel in tracked_files():
        text = open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace").read()
        for n, line in enumerate(text.splitlines(), 1):
            if any(marker in line for marker in OUTSIDE_MARKERS):
                problems.append(f"{rel}:{n}: points outside the repository: {line.strip()[:120]}")
            for m in REF.finditer(line):
                doc, ident = m.group(1), m.group(2).rstrip(".")
                path = os.path.join(ROOT, "docs", doc)
                if doc not in docs:
                    docs[doc] = heading_ids(path) if os.path.isfile(path) else None
                if docs[doc] is None:
                    problems.append(f"{rel}:{n}: cites docs/{doc}, which does not exist")
                elif ident not in docs[doc]:
                    problems.append(f"{rel}:{n}: cites docs/{doc} §{ident}, which is no heading id there")
    for package in LAMBDAS:
        tree = subprocess.run(["cargo", "tree", "-q", "-e", "normal", "-p", package, "--prefix", "none"], cwd=ROOT, capture_output=True, text=True)
        if tree.returncode != 0:
            problems.append(f"cargo tree -p {package} failed: {tree.stderr.strip()[:300]}")
            continue
        for crate in ("thaw-devdata", "thaw-test-support"):
            if any(line.startswith(crate + " ") for line in tree.stdout.splitlines()):
                problems.append(f"Lambda {package} links {crate}; only the CLI and tests may")
    problems += legacy_defect_tests()
    problems += test_modules_declared()
    for p in problems:
        print(p)
    print(f"repository check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
