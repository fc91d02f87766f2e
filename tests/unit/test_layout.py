"""The source tree shows the architecture (docs/architecture.md) and stays that way.

These read the repository's source, not the installed package: they are about
where code lives and what imports what.
"""

import ast
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SRC = REPO / "src"
# The concerns docs/architecture.md describes, one subpackage each.
CONCERNS = {"config", "daemon", "kernel", "tracking", "notify", "ops", "tools", "util"}
# What may sit directly in the package: the entry points. The compiled core
# (ext/hivrrp/*.pyx) also lands there, built as hivrrp._wire and so on.
ROOT_MODULES = {"__init__.py", "__main__.py", "cli.py"}


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in (SRC / "hivrrp").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def import_graph(found: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """Every hivrrp import, type-only and function-level ones included: a circle
    hidden behind TYPE_CHECKING is still two modules that must change together."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in found:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph = {}
    for name, path in found.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                submodules = [f"{node.module}.{alias.name}" for alias in node.names]
                named = [s for s in submodules if s in found]
                targets.update(named)
                # `from pkg import submodule` runs pkg/__init__ as import
                # machinery, not as a dependency of ours.
                if len(named) < len(submodules):
                    targets.add(node.module)
        graph[name] = {owner(t) for t in targets if t.startswith("hivrrp.")} - {None, name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circle():
    assert circles(import_graph(modules())) == []


def test_a_circle_is_found():
    # The checker itself: the circle issue 19 removed (control <-> daemon).
    graph = {"hivrrp.daemon.wiring": {"hivrrp.ops.control"},
             "hivrrp.ops.control": {"hivrrp.daemon.wiring"}, "hivrrp.util.text": set()}
    assert circles(graph) == [["hivrrp.daemon.wiring", "hivrrp.ops.control"]]


def test_operator_surfaces_see_the_daemon_only_through_its_view():
    graph = import_graph(modules())
    for surface in ("hivrrp.ops.control", "hivrrp.ops.metrics"):
        assert "hivrrp.daemon.wiring" not in graph[surface], surface


def test_the_package_root_holds_only_entry_points_and_concerns():
    package = SRC / "hivrrp"
    flat = {p.name for p in package.glob("*.py")} - ROOT_MODULES
    assert flat == set(), f"modules outside a concern's subpackage: {sorted(flat)}"
    folders = {p.name for p in package.iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == CONCERNS


def test_every_concern_is_described_in_the_architecture_document():
    text = (REPO / "docs" / "architecture.md").read_text()
    for concern in CONCERNS:
        assert f"hivrrp/{concern}/" in text or f"hivrrp.{concern}" in text, concern
    for name in modules():
        if name.count(".") >= 2 and not name.endswith("__init__"):
            short = name.removeprefix("hivrrp.")
            assert short.rpartition(".")[2] in text, f"{name} missing from docs/architecture.md"


def tracked_files() -> list[pathlib.Path]:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / line for line in out.splitlines()]


def test_nothing_points_outside_the_repository():
    # Users have the repository only: design notes or references kept beside it
    # during development are not theirs.
    outside = ("../" + "shared", "/" + "work/")   # spelt in pieces so this file passes
    offenders = []
    for path in tracked_files():
        if path.suffix in {".png", ".pcap", ".pcapng"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{path.relative_to(REPO)}: {needle}" for needle in outside
                      if needle in text]
    assert offenders == []
