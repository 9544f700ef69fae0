"""Folders written by ``xueliang dataset export`` as garbage/spill data: real frames operators judged.

An export's labels number the city's incident types (its ``data.yaml``); the litter detector knows
``CLASSES``. ``litter_items`` keeps what says something about garbage or spill and renumbers it:

- a positive whose label is garbage or spill (a parking case judged ``correct`` says nothing
  about litter, and its frame may hold litter no one labelled: left out);
- a false alarm on a garbage or spill case: a hard negative, no labels.

The export's own split is kept (``train``/``val`` by incident id): ``make models`` trains on its
train and selects on its val; ``make eval`` reports on its val.

    >>> renumber(["2 0.5 0.5 0.1 0.1", "0 0.2 0.2 0.1 0.1"], {0: "illegal_parking", 2: "spill"})
    ['1 0.5 0.5 0.1 0.1']
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from models.litter.synth import CLASSES


def renumber(lines: list[str], names: dict[int, str]) -> list[str]:
    """Label lines in the export's numbering -> those of a litter class, in ``CLASSES``' numbering."""
    out = []
    for line in lines:
        k, *box = line.split()
        if names.get(int(k)) in CLASSES:
            out.append(" ".join([str(CLASSES.index(names[int(k)])), *box]))
    return out


def litter_items(folder: Path, split: str) -> list[tuple[Path, list[str]]]:
    """The export's images of ``split`` that teach garbage/spill, each with its renumbered label
    lines (empty for a hard negative). ValueError for a folder that is no export."""
    folder = Path(folder)
    if not (folder / "manifest.jsonl").is_file() or not (folder / "data.yaml").is_file():
        raise ValueError(f"{folder}: no manifest.jsonl and data.yaml; pass a folder written by "
                         "`xueliang dataset export --out`")
    names = {int(k): v for k, v in yaml.safe_load((folder / "data.yaml").read_text())["names"].items()}
    items = []
    for line in (folder / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["split"] != split:
            continue
        labels = (folder / entry["label"]).read_text().splitlines()
        kept = renumber(labels, names)
        if kept or (not labels and entry["detected_type"] in CLASSES):
            items.append((folder / entry["image"], kept))
    return items
