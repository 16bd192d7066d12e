"""Every public object is in the API reference, and every gallery example is well formed."""

import ast
import importlib
import re
from pathlib import Path

import pytest

import sk_mlcpc

ROOT = Path(__file__).resolve().parents[2]
API = (ROOT / "docs" / "api.rst").read_text()
PUBLIC_MODULES = ["bounds", "blockwise", "critics", "datasets", "distributed", "encoders", "views"]


def _documented(module: str) -> set[str]:
    """Names listed under ``.. module:: <module>`` up to the next module directive."""
    sections = re.split(r"^\.\. module:: ", API, flags=re.M)
    names: set[str] = set()
    for section in sections[1:]:
        name, _, body = section.partition("\n")
        if name.strip() == module:
            names |= set(re.findall(r"^   ([A-Za-z_][A-Za-z0-9_]*)$", body, flags=re.M))
    return names


def test_every_top_level_name_is_documented():
    modules = set(PUBLIC_MODULES) | {"__version__"}
    missing = [n for n in sk_mlcpc.__all__ if n not in modules and n not in _documented("sk_mlcpc")]
    assert not missing, f"add to docs/api.rst: {missing}"


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_module_name_is_documented(module):
    exported = set(importlib.import_module(f"sk_mlcpc.{module}").__all__)
    missing = sorted(exported - _documented(f"sk_mlcpc.{module}"))
    assert not missing, f"add to docs/api.rst under sk_mlcpc.{module}: {missing}"


EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_gallery_example_has_a_title_and_cells(path):
    source = path.read_text()
    docstring = ast.get_docstring(ast.parse(source))
    assert docstring, "a gallery example starts with an RST docstring"
    title, underline = docstring.splitlines()[:2]
    assert set(underline) == {"="} and len(underline) >= len(title)
    assert "# %%" in source
