"""The layout: one subpackage per stage, imports flowing one way, small modules, each saying what it takes and gives."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Mapping, Optional

import pytest

import symconv

PACKAGE = Path(symconv.__file__).resolve().parent

# The stages, lowest first. A module may import, at module level, its own subpackage and any lower stage, never
# a higher one or a sibling of the same rank (printing and codegen both read the symbolic results, neither the
# other's). The programs on top (cli, demo, train, catalogue) and the optional bridges use everything.
RANKS = {
    "version": 0,
    "templating": 1,
    "console": 1,  # the command line's flag types and error reports: standard library only, for every flag's module
    "symbolic": 2,
    "proofs": 3,
    "printing": 4, "codegen": 4,
    "build": 5,
    "runtime": 6,
    "pipeline": 7,
    "tuning": 8,
    "demo": 9, "train": 9, "catalogue": 9, "export": 9, "progress": 9, "all_sizes": 9,
    "cli": 10, "__init__": 10,
    "torch": 11, "onnx": 11,  # the optional bridges: on top of the public API, never imported by the core
    "__main__": 12,  # the console script: catches Ctrl-C, then loads the command line
}

# Imports inside a function may reach up only for a convenience that hands a value to a higher stage, as
# SymPy's Basic._repr_latex_ does: (module, function) pairs, each with the reason it exists.
UPWARD_CONVENIENCES = {
    ("symconv.symbolic.derive", "_repr_latex_"),     # Jupyter shows a Derivation as LaTeX
    ("symconv.proofs.conv", "_repr_latex_"),         # ... and a Proof or ProofReport
    ("symconv.proofs.general.report", "_repr_latex_"),  # ... and a GeneralProof or GeneralProofReport
    ("symconv.symbolic.transpose_derive", "_repr_latex_"),  # ... and a TransposeDerivation
    ("symconv.proofs.transpose", "_repr_latex_"),    # ... and a TransposeProofReport
    ("symconv.symbolic.network", "prove"),           # Network.prove(): the network proofs of its derivation
    ("symconv.symbolic.network", "compile"),         # Network.compile(): pipeline.compile_network(self)
    ("symconv.cli", "_cmd_import"),                  # `symconv import`: the ONNX bridge, an optional extra
    ("symconv.symbolic.network", "export"),          # Network.export(): export.export_network(self), a C library
    ("symconv.cli", "_cmd_export"),                  # `symconv export --onnx`: the ONNX bridge, an optional extra
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("symconv",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        yield name, path


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
        if not base.startswith("symconv"):
            return []
    else:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    targets = [base]
    if node.module is None:  # from . import a, b: each may be a module
        targets = [f"{base}.{alias.name}" for alias in node.names]
    return targets


def imports(module: str, path: Path) -> Iterator[tuple[str, str | None]]:
    """(imported symconv module, enclosing function or None) for every import of ``module``, TYPE_CHECKING aside."""
    def walk(node: ast.AST, function: str | None) -> Iterator[tuple[str, str | None]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # names for the type checker only (its else branch, if any, holds none of ours)
            if isinstance(child, ast.ImportFrom):
                yield from ((target, function) for target in _resolve(module, path, child))
            elif isinstance(child, ast.Import):
                yield from ((a.name, function) for a in child.names if a.name.startswith("symconv"))
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text()), None)


def known(target: str, names: set[str]) -> str | None:
    """The module of ours that an import names (``symconv.a.b`` may be module ``a.b`` or a name in ``a``)."""
    while target and target not in names:
        target = target.rpartition(".")[0]
    return target or None


ALL = dict(modules())


def upward_imports(modules: Mapping[str, Path]) -> list[str]:
    """Every import of ``modules`` into a higher stage or a sibling of the same rank, but the listed conveniences."""
    wrong = []
    for module, path in modules.items():
        for target, function in imports(module, path):
            found = known(target, set(modules))
            if found is None or found == "symconv" and function is None and stage(module) == "__init__":
                continue
            here, there = stage(module), stage(found)
            if here == there or RANKS[there] < RANKS[here]:
                continue
            if function is not None and (module, function) in UPWARD_CONVENIENCES:
                continue
            where = "module level" if function is None else f"in {function}()"
            wrong.append(f"{module} imports {found} ({where}): stage {here} (rank {RANKS[here]}) may not use "
                         f"stage {there} (rank {RANKS[there]})")
    return wrong


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports at module level."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, function in imports(module, path):
            found = known(target, set(modules))
            if function is None and found is not None and found != module and found != "symconv":
                graph[module].add(found)
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> Optional[list[str]]:
    """An import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> Optional[list[str]]:
        state[node] = 1
        stack.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return stack[stack.index(successor):] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle is not None:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


def test_every_module_imports_only_its_own_stage_and_lower_ones_at_module_level() -> None:
    wrong = upward_imports(ALL)
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules() -> None:
    cycle = find_cycle(import_graph(ALL))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    # The two tests above must be able to fail: the same checks on a small package that breaks both rules.
    files = {
        "symconv.codegen.a": "from ..runtime.kernels import ConvKernels\nfrom .b import f\n\n"
                             "def g():\n    from ..pipeline import compile_conv\n",
        "symconv.codegen.b": "from .a import g\n",
        "symconv.runtime.kernels": "", "symconv.pipeline": "",
    }
    modules = {}
    for name, text in files.items():
        path = tmp_path / (name.replace(".", "_") + ".py")
        path.write_text(text)
        modules[name] = path
    assert upward_imports(modules) == [
        "symconv.codegen.a imports symconv.runtime.kernels (module level): stage codegen (rank 4) may not use "
        "stage runtime (rank 6)",
        "symconv.codegen.a imports symconv.pipeline (in g()): stage codegen (rank 4) may not use stage pipeline "
        "(rank 7)",
    ]
    assert find_cycle(import_graph(modules)) == ["symconv.codegen.a", "symconv.codegen.b", "symconv.codegen.a"]
    del modules["symconv.codegen.b"]
    assert find_cycle(import_graph(modules)) is None


def test_modules_are_small_and_say_what_comes_in_and_goes_out() -> None:
    for module, path in ALL.items():
        text = path.read_text()
        lines = text.count("\n")
        assert lines <= 400, f"{module} has {lines} lines; split it by stage"
        docstring = ast.get_docstring(ast.parse(text))
        assert docstring, f"{module} has no docstring"
        if path.name != "__init__.py" or module != "symconv":
            first = docstring.splitlines()[0]
            assert "->" in first or path.name == "__init__.py", f"{module}: its first line names no input -> output"


@pytest.mark.parametrize("package", sorted({m for m, p in ALL.items() if p.name == "__init__.py" and m != "symconv"}))
def test_every_stage_package_says_what_comes_in_and_what_goes_out(package: str) -> None:
    # Read from the source, as above: importing symconv.onnx or symconv.torch needs their optional extras.
    docstring = ast.get_docstring(ast.parse(ALL[package].read_text())) or ""
    assert "->" in docstring.splitlines()[0], f"{package}: the first line must say what comes in -> goes out"
    assert len(docstring.splitlines()) >= 3, f"{package}: say in a few lines what the stage holds"


def test_the_public_api_is_importable_with_a_star() -> None:
    namespace: dict[str, object] = {}
    exec("from symconv import *", namespace)
    assert set(symconv.__all__) <= set(namespace)
    assert {"ConvSpec", "derive", "prove", "compile_conv", "Network", "latex"} <= set(symconv.__all__)


def test_every_subpackage_ships_in_the_wheel() -> None:
    # setuptools' list is explicit (templates/ is mapped in as symconv.templates): a new subpackage must join it.
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    packages = {m for m, p in ALL.items() if p.name == "__init__.py"}
    assert packages <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(packages - listed)}"
