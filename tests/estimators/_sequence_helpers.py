"""Shared pieces of the ContrastivePredictiveCoding tests: a small, fast estimator and
a rewrite of a saved model's manifest (to make files as older versions wrote them)."""

import json
import zipfile

from sk_mlcpc import ContrastivePredictiveCoding

FAST = {
    "n_components": 8,
    "latent_dim": 8,
    "hidden_layer_sizes": (16,),
    "batch_size": 16,
    "max_epochs": 2,
    "random_state": 0,
}


def fast_cpc(**params) -> ContrastivePredictiveCoding:
    """A ContrastivePredictiveCoding small enough for a test, ``params`` on top."""
    return ContrastivePredictiveCoding(**{**FAST, **params})


def rewrite_manifest(source, target, edit) -> None:
    """Copy the model file ``source`` to ``target`` with ``edit(manifest)`` applied to
    its ``model.json``."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["model.json"])
    edit(manifest)
    members["model.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
