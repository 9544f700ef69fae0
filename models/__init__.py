"""Model files, their manifests and the scripts that build them.

Every ``*.onnx`` here has a ``*.manifest.json`` beside it (source, conversion, sha256,
input spec, classes) and a card (``CARD.md`` in its folder).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


class ModelError(RuntimeError):
    """A model file is missing, altered, or its manifest is wrong."""


def manifest_path(name: str) -> Path:
    """The manifest of the model named ``name`` exactly: a name was globbed, and ``model: '*'`` loaded whichever
    model came first."""
    known = {p.name.removesuffix(".manifest.json"): p for p in sorted(MODELS_DIR.glob("*/*.manifest.json"))}
    if name not in known:
        raise ModelError(f"model {name!r} not found under {MODELS_DIR}; known models: {sorted(known)}")
    return known[name]


def load_manifest(name: str, verify: bool = True) -> tuple[dict, Path]:
    """The manifest of model ``name`` and the path of its ONNX file, sha256 checked."""
    path = manifest_path(name)
    manifest = json.loads(path.read_text())
    onnx_path = path.parent / manifest["file"]
    if not onnx_path.exists():
        raise ModelError(f"model {name!r}: {onnx_path} is missing; rebuild it with the script in {path.parent.parent}")
    if verify:
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        if digest != manifest["sha256"]:
            raise ModelError(f"model {name!r}: sha256 of {onnx_path.name} is {digest}, manifest says {manifest['sha256']}")
    return manifest, onnx_path
