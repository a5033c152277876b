#!/usr/bin/env python3
"""The file-level import graph of `src/`, and its circles.

Every `crate::`, `super::` and `self::` path (use lines and inline paths, groups
included) is resolved to the file that defines the module it names; `#[cfg(test)]`
modules are left out, since tests may reach across layers. ARCHITECTURE.md's rule is
that this prints `0 circles`.

    python3 tools/modgraph.py src        # the circles and a count
    python3 tools/modgraph.py src -v     # every file and what it imports
"""
import os
import re
import sys

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


def main():
    root = next((a for a in sys.argv[1:] if not a.startswith("-")), "src")
    graph = edges(modules(root))
    name = lambda m: "::".join(m) or "crate"
    if "-v" in sys.argv:
        for m in sorted(graph):
            print(f"{name(m):28} -> {', '.join(sorted(name(t) for t in graph[m]))}")
    found = circles(graph)
    for c in found:
        print("CIRCLE:", ", ".join(sorted(name(m) for m in c)))
    print(f"{len(graph)} files, {sum(map(len, graph.values()))} edges, {len(found)} circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
