#!/usr/bin/env python3
"""Fails when the modules of a crate use each other in a circle.

For each crate given (its `src` folder), every `.rs` file is a module; an edge A -> B is a path in
A that names module B or an item of it (`crate::b::X`, `super::X`, `self::b::X`, or a child
module's name). A module's own children declared with `mod` are not edges (ownership), but a
parent that names an item of its child is. Prints each circle found; exits 1 if there is one.
Usage: check-module-cycles.py CRATE_SRC_DIR...
"""
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.relpath(os.path.join(root, name), src)
            parts = path[:-3].split(os.sep)
            if parts[-1] in ("lib", "main", "mod"):
                parts = parts[:-1]
            if parts and parts[0] == "bin":
                continue
            found[tuple(parts)] = os.path.join(root, name)
    return found


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    # Test modules may use anything above them: drop each `#[cfg(test)] mod x { ... }`.
    while True:
        found = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
        if not found:
            return text
        depth, end = 1, found.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        text = text[: found.start()] + text[end:]


def resolve(known, path):
    """The longest known module that is a prefix of path."""
    for end in range(len(path), -1, -1):
        if tuple(path[:end]) in known:
            return tuple(path[:end])
    return ()


def edges(known):
    graph = {module: set() for module in known}
    for module, file in known.items():
        text = strip(open(file, encoding="utf-8").read())
        children = {m for m in known if m[:-1] == module and len(m) == len(module) + 1}
        child_names = {m[-1] for m in children}
        # Expand `use x::{a, b::c}` groups into single paths.
        paths = []
        for group in re.finditer(r"\buse\s+([^;]+);", text):
            body = group.group(1)
            prefix = re.match(r"([\w:]*)\{", body.replace(" ", "").replace("\n", ""))
            compact = body.replace(" ", "").replace("\n", "")
            if prefix:
                head = prefix.group(1)
                inner = compact[len(head) + 1 : -1]
                for item in re.split(r",(?![^{]*\})", inner):
                    paths.append(head + item)
            else:
                paths.append(compact)
        paths += re.findall(rf"\b(?:crate|super|self)(?:::{IDENT})+", text)
        paths += [m for m in re.findall(rf"\b({IDENT}(?:::{IDENT})+)", text) if m.split("::")[0] in child_names]
        for raw in paths:
            parts = [p for p in raw.split("::") if p and not p.startswith("{")]
            if not parts:
                continue
            if parts[0] == "crate":
                target = parts[1:]
            elif parts[0] == "super":
                base = list(module)
                while parts and parts[0] == "super":
                    base = base[:-1]
                    parts = parts[1:]
                target = base + parts
            elif parts[0] == "self":
                target = list(module) + parts[1:]
            elif parts[0] in child_names:
                target = list(module) + parts
            else:
                continue
            resolved = resolve(known, target)
            if resolved != module and not (resolved == () and not target):
                # A module naming its own descendant's item through `mod` is ownership only
                # when it is the `mod` line itself, which `use`/paths never are.
                graph[module].add(resolved)
    return graph


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(component)

    sys.setrecursionlimit(10000)
    for node in graph:
        if node not in index:
            visit(node)
    return out


def name(module):
    return "::".join(("crate",) + module)


def main():
    failed = False
    for src in sys.argv[1:]:
        known = modules(src)
        found = cycles(edges(known))
        for component in found:
            failed = True
            print(f"{src}: modules in a circle: {', '.join(sorted(name(m) for m in component))}")
        if not found:
            print(f"{src}: {len(known)} modules, no circles")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
