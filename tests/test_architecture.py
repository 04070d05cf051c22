"""The house rules of shared/DESIGN.md, checked on the source: layering, no import circle, short functions,
one safe checkpoint reader, and a light ``import rexnet``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rexnet"

#: What each part of the package may import directly (besides itself and the base modules below);
#: the layers of DESIGN.md, lowest first. Anything reachable through these is allowed too.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "plan": (),
    "layers": ("plan",),
    "model": ("layers",),
    "weights": ("plan",),
    "zoo": ("model", "weights"),
    "data": ("zoo",),
    "run": (),  # what every long job shares (folder, lock, resume rules, loop): base helpers and torch only
    "rank": ("zoo", "run"),  # the profiler builds a model by name; the study needs layers and a run folder
    "train": ("data", "run"),
    # trials report the rank of their features; latency budgets time candidates on a deploy runtime
    "search": ("train", "rank", "deploy"),
    "detection": ("train",),
    "deploy": ("data",),
    "experiments": ("train", "rank"),  # Table 2: the rank study's recipe trained; neither imports the other
    "cli": ("search", "detection", "deploy", "experiments"),
}
#: Leaf helpers any layer may use; they import at most ``errors`` and ``plan``.
BASE = {
    "errors",
    "_files",
    "_images",
    "features",
    "_env",
    "_seed",
    "_signals",
    "_table",
    "_memory",
    "_config",
    "_device",
    "_ranges",
}
#: The package's own facade and entry point may import any part (lazily, see the import test).
FACADE = {"__init__", "__main__"}


def _allowed(part: str) -> set[str]:
    seen, todo = set(), list(DEPENDS_ON.get(part, ()))
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(DEPENDS_ON.get(p, ()))
    return seen


def _part(module: str) -> str:
    """``rexnet.train.loop`` -> ``train``; ``rexnet.errors`` -> ``errors``; ``rexnet`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, int]]:
    """(importing module, imported rexnet module, line) for every import in src, function-level ones included."""
    return [(_module_of(p), target, line) for p in SRC.rglob("*.py") for target, _, line in _import_targets(p)]


def test_every_part_is_in_the_layer_table():
    parts = {p.stem for p in SRC.glob("*.py")} | {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert parts - set(DEPENDS_ON) - BASE - FACADE == set()


def test_imports_follow_the_layers():
    bad = []
    for module, target, line in _imports():
        src, dst = _part(module), _part(target)
        if src == dst or src in FACADE or dst in BASE:
            continue
        if src in BASE:
            ok = dst in ("plan",)
        else:
            ok = dst in _allowed(src)
        if not ok:
            bad.append(f"{module}:{line} imports {target} ({src} -> {dst})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(sorted(bad))


def test_no_import_circle_between_parts():
    graph: dict[str, set[str]] = {}
    for module, target, _ in _imports():
        src, dst = _part(module), _part(target)
        if src != dst and src not in FACADE:
            graph.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            p = todo.pop()
            for q in graph.get(p, ()):
                if q == goal:
                    return True
                if q not in seen:
                    seen.add(q)
                    todo.append(q)
        return False

    circles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a))
    assert not circles, circles


def test_no_function_over_100_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 100:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_torch_load_only_in_the_safe_reader():
    calls = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                calls.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert calls and all(c.startswith("weights/io.py:") for c in calls), calls


@pytest.fixture(scope="module")
def modules_after_import() -> set[str]:
    code = "import json, sys, rexnet; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "heavy",
    [
        "rexnet.train",
        "rexnet.search",
        "rexnet.rank",
        "rexnet.deploy.quant",
        "rexnet.deploy.bench",
        "rexnet.detection",
        "rexnet.cli",
        "optuna",
        "onnx",
        "onnxruntime",
        "openvino",
        "matplotlib",
        "timm",
    ],
)
def test_import_rexnet_loads_no_heavy_part(heavy, modules_after_import):
    """``import rexnet`` brings the model API (zoo, model, plan, weights) and nothing it does not need."""
    assert "rexnet.zoo" in modules_after_import
    assert heavy not in modules_after_import


def test_tests_mirror_the_source():
    """Each test folder is named after the package or module of src/rexnet it tests."""
    tests = Path(__file__).parent
    folders = {p.parent.name for p in tests.glob("*/test_*.py")}
    parts = {p.stem for p in SRC.glob("*.py")} | {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert folders and folders <= parts, sorted(folders - parts)


# ---- one error family, no private cross-module imports, no file-level circles, one search seam -------------
def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _is_module(name: str) -> bool:
    """``rexnet.x.y`` names a module or package of src (not a name inside one)."""
    rel = Path(*name.split("."))
    return (SRC.parent / rel).with_suffix(".py").is_file() or (SRC.parent / rel / "__init__.py").is_file()


def _import_targets(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported rexnet module, the names taken from it, line) for every import in one file."""
    module, is_pkg = _module_of(path), path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # "from . import x": x may be a module of its own
                sub = f"{target}.{a.name}"
                out.append((sub, [], node.lineno) if _is_module(sub) else (target, [a.name], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
    return [(t, names, line) for t, names, line in out if t == "rexnet" or t.startswith("rexnet.")]


def _exception_bases(node: ast.ClassDef) -> list[str]:
    import builtins

    names = []
    for b in node.bases:
        name = b.attr if isinstance(b, ast.Attribute) else b.id if isinstance(b, ast.Name) else ""
        builtin = getattr(builtins, name, None)
        if name.endswith(("Error", "Exception")) or (isinstance(builtin, type) and issubclass(builtin, BaseException)):
            names.append(name)
    return names


def test_no_exception_class_outside_errors():
    """Every exception class rexnet defines lives in errors.py (one family, one place to read the exit codes)."""
    found = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and _exception_bases(node):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}({', '.join(_exception_bases(node))})")
    assert not found, "exception classes outside errors.py:\n" + "\n".join(found)


def test_the_exception_check_sees_a_subclass():
    """The check above is not blind: it flags a class deriving from a built-in or a family exception."""
    tree = ast.parse("class A(ValueError): pass\nclass B(errors.InputError): pass\nclass C(object): pass")
    flagged = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and _exception_bases(n)]
    assert flagged == ["A", "B"]


def _private_imports() -> set[str]:
    found = set()
    for path in SRC.rglob("*.py"):
        module = _module_of(path)
        for target, names, _ in _import_targets(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target != module:
                    found.add(f"{path.relative_to(SRC)} imports {name} from {target}")
    return found


def test_no_private_name_imported_across_modules():
    found = sorted(_private_imports())
    assert not found, "private names imported from another module (make them public or move the code):\n" + "\n".join(
        found
    )


def _file_circles() -> list[tuple[str, ...]]:
    """Strongly connected groups of files inside one package (package ``__init__`` facades left out)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        module = _module_of(path)
        package = module.rsplit(".", 1)[0]
        for target, _, _ in _import_targets(path):
            if target != module and target.rsplit(".", 1)[0] == package and target != package:
                graph.setdefault(module, set()).add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[tuple[str, ...]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(tuple(sorted(group)))

    for v in list(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_no_import_circle_between_files_of_a_package():
    """Inside a package too, files import in one direction (issue 24: deploy/ had export <-> openvino_ir ...)."""
    assert not _file_circles(), _file_circles()


def test_the_search_reaches_training_through_one_seam():
    """Only search/trainer.py imports rexnet.train (issue 24 part 4)."""
    users = sorted(
        {
            str(path.relative_to(SRC))
            for path in (SRC / "search").glob("*.py")
            for target, _, _ in _import_targets(path)
            if target == "rexnet.train" or target.startswith("rexnet.train.")
        }
    )
    assert users == ["search/trainer.py"], users


#: deploy/bench.py only records OMP_WAIT_POLICY and passes the environment on to a child process.
KNOWN_ENV_READERS = {"deploy/bench.py"}


def test_environment_variables_are_read_in_one_place():
    """``os.environ``/``os.getenv`` appear only in _env.py, which checks every value (issue 23: ``WORLD_SIZE=abc``)."""
    readers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                if isinstance(node.value, ast.Name) and node.value.id == "os":
                    readers.add(str(path.relative_to(SRC)))
    assert "_env.py" in readers
    assert readers - {"_env.py"} - KNOWN_ENV_READERS == set(), sorted(readers - {"_env.py"} - KNOWN_ENV_READERS)
