"""Where the shipped data lives: ``arch_specs/``, ``energy_tables/``, ``mappings/``,
``workloads/``, ``models/`` and ``data/traces/``.

In a source checkout (and an editable install) they sit at the repository root; a built
wheel carries them inside the package (pyproject.toml maps each folder to a
``fusioncim_plugin.<folder>`` package-data directory).
"""

from __future__ import annotations

from pathlib import Path

PKG = Path(__file__).resolve().parent
REPO = PKG.parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (e.g. "arch_specs", "data/traces") of the installed package,
    else of the source tree."""
    inside = PKG / name
    return inside if inside.is_dir() else REPO / name
