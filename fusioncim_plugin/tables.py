"""Loader for the sourced energy tables in ``<repo>/energy_tables/``.

Every number the component models use lives in one YAML file per component::

    component: IPCIMMacro
    description: ...
    reference_point:          # the design point at which the entries hold
      tech_node: {value: 28e-9, unit: m, source: "..."}
    entries:
      mac_energy: {value: 0.0548, unit: pJ, source: "...", note: "..."}

Each value carries ``value``, ``unit`` and a non-empty ``source`` (``note`` is
optional); any other field, a missing field or a missing ``source`` is an error that
names the file and the field. ``FUSIONCIM_ENERGY_TABLES`` overrides the directory.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_VAR = "FUSIONCIM_ENERGY_TABLES"
from fusioncim_plugin._data import data_dir  # noqa: E402

DEFAULT_DIR = data_dir("energy_tables")


class TableError(ValueError):
    """A missing, malformed or incomplete energy table (the message names the file)."""


class Entry(BaseModel):
    """One sourced number."""

    model_config = ConfigDict(extra="forbid")

    value: float
    unit: str
    source: str = Field(min_length=1)
    note: str | None = None

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source must not be blank")
        return v


class Table(BaseModel):
    """The validated contents of one ``energy_tables/<name>.yaml`` file."""

    model_config = ConfigDict(extra="forbid")

    component: str
    description: str
    reference_point: dict[str, Entry]
    entries: dict[str, Entry]
    # Optional: configurations queried from a model (e.g. CACTI) and its results, one
    # dict of numbers per row; the description names the tool and the command.
    cacti_queries: list[dict[str, float]] = Field(default_factory=list)
    path: Path = Field(default=Path("<memory>"), exclude=True)

    def _get(self, section: str, key: str, unit: str | None) -> Entry:
        items = getattr(self, section)
        if key not in items:
            raise TableError(
                f"{self.path}: no {section} key {key!r}; "
                f"available: {', '.join(sorted(items))}"
            )
        entry = items[key]
        if unit is not None and entry.unit != unit:
            raise TableError(
                f"{self.path}: {section}.{key} has unit {entry.unit!r}, "
                f"the code expects {unit!r}"
            )
        return entry

    def value(self, key: str, unit: str | None = None) -> float:
        """Value of ``entries[key]`` in its stored unit (``unit``, if given, must match)."""
        return self._get("entries", key, unit).value

    def ref(self, key: str, unit: str | None = None) -> float:
        """Value of ``reference_point[key]`` in its stored unit."""
        return self._get("reference_point", key, unit).value

    def entry(self, key: str) -> Entry:
        """The full entry (value, unit, source, note) of ``entries[key]``."""
        return self._get("entries", key, None)


def tables_dir() -> Path:
    """Directory holding the tables (``$FUSIONCIM_ENERGY_TABLES`` if set)."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def load_table(name: str) -> Table:
    """Load and validate ``<tables_dir>/<name>.yaml`` (``name`` is the file stem)."""
    return _load(tables_dir() / f"{name}.yaml")


@lru_cache(maxsize=None)
def _load_cached(path: Path, mtime_ns: int) -> Table:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TableError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise TableError(f"{path}: top level must be a mapping")
    try:
        table = Table.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise TableError(f"{path}: {problems}") from e
    table.path = path
    return table


def _load(path: Path) -> Table:
    if not path.is_file():
        raise TableError(f"{path}: energy table not found")
    return _load_cached(path, path.stat().st_mtime_ns)
