"""Sphinx configuration for the sk-mlcpc documentation.

Build (from the repository root)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Links to the documentation of numpy, scikit-learn, PyTorch, skorch and Python
(intersphinx) need their inventories from the network, so they are only configured when
the environment variable ``SK_MLCPC_DOCS_INTERSPHINX=1`` is set; without it the build
is fully offline.
"""

import os
import sys
from pathlib import Path

# Import the package from this checkout even when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import sk_mlcpc

# -- Project -------------------------------------------------------------------------------

project = "sk-mlcpc"
author = "sk-mlcpc developers"
copyright = "sk-mlcpc developers, BSD-3-Clause"
version = sk_mlcpc.__version__
release = sk_mlcpc.__version__

# -- Extensions ----------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# autodoc / autosummary: one generated page per object, in docs/generated/.
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections already state the types

# numpydoc: our class template lists the methods itself; letting numpydoc add its own
# member tables as well would describe every method twice.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# intersphinx: opt-in, because the inventories are downloaded at build time.
if os.environ.get("SK_MLCPC_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable/", None),
    }
else:
    intersphinx_mapping = {}

# sphinx-gallery: every examples/plot_*.py is executed at build time (on the CPU, one
# torch thread) and rendered with its output and figures; a failing example fails the build.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "doc_module": ("sk_mlcpc",),
    "backreferences_dir": None,
    "within_subsection_order": "FileNameSortKey",
    "min_reported_time": 1,
}

# The examples run in this process; their networks are tiny, and one intra-op thread is
# faster than several on a small, shared machine.
torch.set_num_threads(1)


# -- HTML ----------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sk-mlcpc {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}

# -- Work-arounds ------------------------------------------------------------------------

# Sphinx 9.0's autosummary cuts an object's one-line summary at the first ". " even when
# that falls inside inline markup (``g(x) . h(y)``, ``hidden... -> out``), leaving an
# unterminated literal in the summary table and a docutils warning. Extend such a summary
# sentence by sentence until it parses cleanly. A no-op where Sphinx gets it right.


def _patch_autosummary_summaries() -> None:
    import re

    from docutils import nodes
    from sphinx.ext import autosummary

    original = autosummary.extract_summary
    parse = getattr(autosummary, "_parse_summary", None)
    if parse is None:  # another Sphinx version: leave it alone
        return

    def clean(text: str, settings) -> bool:
        return not any(parse([text], settings).findall(nodes.system_message))

    def extract_summary(doc, settings):
        summary = original(doc, settings)
        if not summary or clean(summary, settings):
            return summary
        stanza = []
        for line in doc:
            if stanza and not line.strip():
                break
            if line.strip():
                stanza.append(line.strip())
        text = " ".join(stanza)
        for match in re.finditer(r"\.(\s+|$)", text):
            candidate = text[: match.start() + 1]
            if len(candidate) > len(summary) and clean(candidate, settings):
                return candidate
        return summary

    autosummary.extract_summary = extract_summary


_patch_autosummary_summaries()
