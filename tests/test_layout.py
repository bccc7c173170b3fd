"""The tree draws the pipeline: each stage of harness/ imports only the stages before it,
no module imports itself back through others, and nothing outside the registry and the
adapters names a server."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The pipeline, first stage first: a stage may import itself and the stages before it.
# `errors` is the one module every stage may use; `api` is the public face the tools use;
# `__main__` (python -m harness) is the command, last.
STAGES = ("errors", "decisions", "net", "sim", "http", "search", "targets", "api", "tools",
          "__main__")


def modules() -> dict[str, Path]:
    out = {}
    for base in ("harness", "servers"):
        for path in (ROOT / base).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        yield from (n for n in names if n in known)


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "harness" and len(parts) > 1 else None


def test_no_module_imports_itself_back_through_others():
    known = modules()
    graph = {m: set(imports(p, known)) - {m} for m, p in known.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            nxt = todo.pop()
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo += graph[nxt]
        return False

    cycles = sorted(m for m in graph if reaches(m, m))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_each_stage_imports_only_the_stages_before_it():
    known = modules()
    wrong = []
    for module, path in known.items():
        here = stage(module)
        if here is None:
            continue
        assert here in STAGES, f"{module}: add its stage to STAGES"
        for target in imports(path, known):
            there = stage(target)
            if there is not None and STAGES.index(there) > STAGES.index(here):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_harness_module_names_a_server():
    """Servers live in their adapters' registry entries; the harness reads them there.
    (The reference server is the harness's own ground truth, named as REFERENCE.)"""
    named = re.compile(r"\b(uvicorn|hypercorn|httptools)\b")
    found = []
    for path in (ROOT / "harness").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and named.search(node.value) and not _is_docstring(tree, node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def _is_docstring(tree: ast.AST, constant: ast.Constant) -> bool:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and body[0].value is constant:
            return True
    return False


def test_the_commands_start_and_replay_without_importing_hypothesis():
    # Importing Hypothesis takes about half a second, paid by every command before it
    # says anything (--help, --version, a bad option) and by every replay worker.
    # Only what searches imports it.
    code = ("import sys, harness.tools.cli, harness.targets.worker, harness.api; "
            "print('hypothesis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
