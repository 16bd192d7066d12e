"""Imports point down the layers (docs/architecture.rst), read from the source with ``ast``.

Layers, lowest first: ``_math`` (1), ``_nn`` (2), ``_engine`` (3), ``_estimators`` (4),
``_tools`` (5). A layer module may import its own layer and the layers below it, and the
leaves (``datasets``, ``_version``), which import nothing of the package; so ``_math``
imports nothing of the package outside ``_math`` but the leaves. No layer module or leaf
imports the public surface: the package root ``sk_mlcpc`` or a façade (``sk_mlcpc.bounds``
...), which only re-export the layers. Every ``import`` and ``from ... import`` counts, relative or
absolute, at module level or inside a function.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "sk_mlcpc"
SOURCE = Path(__file__).resolve().parents[1] / PACKAGE

# Subpackage -> layer number; a module may import a layer number no higher than its own.
LAYERS = {"_math": 1, "_nn": 2, "_engine": 3, "_estimators": 4, "_tools": 5}
# Modules that import nothing of the package and that every module may import.
LEAVES = {f"{PACKAGE}.datasets", f"{PACKAGE}._version"}
# The public surface: the root and the façades that re-export a layer module's __all__.
FACADES = {
    f"{PACKAGE}.{name}"
    for name in ("bounds", "blockwise", "critics", "encoders", "views", "distributed")
}
PUBLIC = {PACKAGE} | FACADES


def module_name(path: Path, root: Path = SOURCE) -> str:
    """``sk_mlcpc/_math/bounds.py`` -> ``sk_mlcpc._math.bounds`` (a package -> its name)."""
    parts = (root.name, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = SOURCE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def role(module: str) -> str | int | None:
    """A layer number, ``"leaf"``, ``"public"``, or None for a module the rules do not place."""
    if module in LEAVES:
        return "leaf"
    if module in PUBLIC:
        return "public"
    parts = module.split(".")
    if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return None


@dataclass(frozen=True)
class Import:
    line: int
    module: str  # the package module the statement loads

    def __str__(self) -> str:
        return f"line {self.line}: {self.module}"


def package_imports(source: str, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every module of the package that ``source`` (the text of ``module``) imports.

    ``from a import b`` loads ``a.b`` when that is a module of the package, else ``a``
    (``b`` is then a name defined in ``a``).
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        found += [
            Import(node.lineno, target)
            for target in dict.fromkeys(targets)
            if target == PACKAGE or target.startswith(f"{PACKAGE}.")
        ]
    return found


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None if it may."""
    own, other = role(importer), role(imported)
    if own == "public" or imported == importer:
        return None
    if other is None:
        return "is not a module of the package's layers (add it to tests/test_architecture.py)"
    if other == "public":
        what = "the package root" if imported == PACKAGE else "a public façade"
        return f"is {what}: import the layer module itself"
    if own == "leaf" and other != "leaf":
        return "is part of the package, which a leaf module may not import"
    if isinstance(own, int) and isinstance(other, int) and other > own:
        return f"is in a higher layer ({other} > {own})"
    return None


def violations(path: Path, modules: dict[str, Path], root: Path = SOURCE) -> list[str]:
    name = module_name(path, root)
    imports = package_imports(path.read_text(), name, path.name == "__init__.py", set(modules))
    shown = path.relative_to(root.parent)
    return [
        f"{shown}:{found.line} imports {found.module}, which {why}"
        for found in imports
        if (why := violation(name, found.module)) is not None
    ]


MODULES = package_modules()


def test_every_module_has_a_place():
    unplaced = sorted(name for name in MODULES if role(name) is None)
    assert not unplaced, f"modules in no layer, leaf or façade: {unplaced}"
    assert {name for name in MODULES if role(name) == "public"} == PUBLIC


@pytest.mark.parametrize("path", MODULES.values(), ids=lambda path: str(path.relative_to(SOURCE)))
def test_imports_point_down(path):
    found = violations(path, MODULES)
    assert not found, "imports against the layers:\n" + "\n".join(found)


# ------------------------------------------------------------- the checker itself


FAKE_TREE = {
    "__init__.py": "from sk_mlcpc import bounds\nfrom sk_mlcpc._estimators.mi import Est\n",
    "bounds.py": "from sk_mlcpc._math.bounds import *\n",
    "datasets.py": "import numpy\n",
    "_math/__init__.py": "",
    "_math/bounds.py": "import math\nfrom . import collision\n",
    "_math/collision.py": "def f():\n    from sk_mlcpc.datasets import g\n",
    "_nn/__init__.py": "",
    "_nn/critics.py": "from .._math import bounds\nfrom sk_mlcpc._math.bounds import cap\n",
    "_engine/__init__.py": "",
    "_engine/net.py": "import sk_mlcpc._nn.critics\n",
    "_estimators/__init__.py": "",
    "_estimators/mi.py": "from ..datasets import make\nfrom sk_mlcpc._engine import net\n",
}
BAD_IMPORTS = {
    "_math/bounds.py": "from sk_mlcpc._nn import critics",
    "_math/collision.py": "def f():\n    from .._nn.critics import Critic",
    "_nn/critics.py": "import sk_mlcpc._engine.net as net",
    "_engine/net.py": "from ..bounds import cap",
    "_estimators/mi.py": "from sk_mlcpc import datasets, __version__",
    "datasets.py": "from sk_mlcpc._math.bounds import cap",
}


def _fake_package(tmp_path: Path, extra: dict[str, str]) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / PACKAGE
    for relative, text in FAKE_TREE.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text + extra.get(relative, ""))
    return root, package_modules(root)


def test_the_checker_passes_imports_that_point_down(tmp_path):
    root, modules = _fake_package(tmp_path, {})
    assert [line for path in modules.values() for line in violations(path, modules, root)] == []


@pytest.mark.parametrize("relative", BAD_IMPORTS)
def test_the_checker_names_file_line_and_module_of_a_bad_import(tmp_path, relative):
    root, modules = _fake_package(tmp_path, {relative: "\n" + BAD_IMPORTS[relative] + "\n"})
    found = violations(root / relative, modules, root)
    assert len(found) == 1
    line = FAKE_TREE[relative].count("\n") + 1 + BAD_IMPORTS[relative].count("\n")
    assert found[0].startswith(f"{PACKAGE}/{relative}:{line + 1} imports {PACKAGE}")
