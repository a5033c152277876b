#!/usr/bin/env python3
"""The file-level import graph of `src/`, checked against the crate's layers.

Every `crate::`, `super::` and `self::` path (use lines and inline paths, groups
included) is resolved to the file that defines the module it names; `#[cfg(test)]`
modules are left out, since tests may reach across layers. It fails (exit 1) on:

- an import circle between files;
- an arrow against LAYERS below: a file importing a layer that comes after its own;
- an arrow FORBIDDEN below, though the layers allow it;
- a top-level module placed in no layer (a new one must be given its place).

ARCHITECTURE.md's bird's-eye view describes the same order; CI runs this.

    python3 tools/modgraph.py src        # what is wrong, and a count
    python3 tools/modgraph.py src -v     # every file and what it imports
"""
import os
import re
import sys

# The crate's layers in import order: a file may import its own layer and the
# layers before it, never one after. Top-level modules; "" is the crate root
# (lib.rs, main.rs). The session and the metrics are evidence in the pipeline's
# order, but the engine records into them, so they come before it here.
LAYERS = [
    ("input", ["scenario", "flow", "session", "compact", "secrets"]),
    ("plan", ["plan"]),
    ("validation", ["validate"]),
    ("records", ["metrics", "progress"]),
    # What both the cluster and the load need, so that neither imports the other.
    ("below the engine", ["target", "tls"]),
    ("engine", ["images", "error", "cluster", "reaper", "load", "chaos", "store"]),
    ("verdict", ["gate"]),
    ("output", ["report", "compare"]),
    ("commands", ["cli", "commands", "run", "fuzz_inputs", ""]),
]

# Arrows the layers allow but the design does not, with why.
FORBIDDEN = [
    ("load", "report", "the load names no output format: it writes through "
     "load::collector::IntervalSink, which the report's formats implement"),
    ("load", "cluster", "the load and the cluster share only what sits below "
     "both; the load never reaches into the cluster"),
    ("cluster", "load", "the cluster reaches the load's targets and TLS through "
     "what sits below both (target, tls), never the load itself"),
]

TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")


def modules(root):
    """Module path (tuple) -> file, for every .rs file below root."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                found[tuple(parts)] = path
    return found


def without_tests(text):
    """The source without its inline `#[cfg(test)] mod … { … }` blocks."""
    out, i = [], 0
    while (m := TEST_MODULE.search(text, i)) is not None:
        out.append(text[i:m.start()])
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        i = j + 1
    out.append(text[i:])
    return "".join(out)


def edges(found):
    def resolve(path):
        for n in range(len(path), 0, -1):
            if tuple(path[:n]) in found:
                return tuple(path[:n])
        return None

    graph = {m: set() for m in found}
    for mod, file in found.items():
        if os.path.basename(file) == "tests.rs":
            continue
        text = re.sub(r"//.*", "", without_tests(open(file).read()))
        for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)(::\{([^;]*?)\})?", text, re.S):
            base, rest, group = m.group(1), m.group(2), m.group(4)
            segs = [s for s in rest.split("::") if s]
            start = [] if base == "crate" else list(mod) if base == "self" else list(mod[:-1])
            while segs and segs[0] == "super":
                start, segs = start[:-1], segs[1:]
            paths = [start + segs]
            for g in (group or "").split(","):
                g = g.strip().split(" as ")[0].strip()
                if g and re.fullmatch(r"[\w:]+", g):
                    paths.append(start + segs + g.split("::"))
            for path in paths:
                target = resolve(path)
                if target is not None and target != mod:
                    graph[mod].add(target)
    return graph


def circles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def name(m):
    return "::".join(m) or "crate"


def layer_breaches(graph):
    """Files in no layer, and arrows against the layers or forbidden, as lines."""
    rank = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}
    top = lambda m: m[0] if m else ""
    lines = []
    for m in sorted(graph):
        if top(m) not in rank:
            lines.append(f"UNPLACED: {name(m)}: module `{top(m)}` is in no layer of "
                         "LAYERS in tools/modgraph.py; add it where it belongs")
    for m in sorted(graph):
        for t in sorted(graph[m]):
            a, b = top(m), top(t)
            why = next((w for src, dst, w in FORBIDDEN if (src, dst) == (a, b)), None)
            if why is not None:
                lines.append(f"FORBIDDEN: {name(m)} -> {name(t)}: {why}")
            elif a in rank and b in rank and rank[b] > rank[a]:
                lines.append(f"AGAINST THE LAYERS: {name(m)} -> {name(t)}: "
                             f"{LAYERS[rank[a]][0]} may not import {LAYERS[rank[b]][0]}")
    return lines


def main():
    root = next((a for a in sys.argv[1:] if not a.startswith("-")), "src")
    graph = edges(modules(root))
    if "-v" in sys.argv:
        for m in sorted(graph):
            print(f"{name(m):28} -> {', '.join(sorted(name(t) for t in graph[m]))}")
    found = circles(graph)
    for c in found:
        print("CIRCLE:", ", ".join(sorted(name(m) for m in c)))
    breaches = layer_breaches(graph)
    for line in breaches:
        print(line)
    print(f"{len(graph)} files, {sum(map(len, graph.values()))} edges, {len(found)} circles, "
          f"{len(breaches)} layer breaches")
    return 1 if found or breaches else 0


if __name__ == "__main__":
    sys.exit(main())
