"""Sweep specification: a YAML file -> a validated list of points.

A sweep file names parameters of three kinds:

* **policy**: ``design`` (a key of ``designs.DESIGNS``) and ``softmax_order`` ("default" =
  the design's own, "none" / null = charge no rescale, or an order policy name);
* **workload**: ``model``, ``phase``, ``seq_len``, ``batch``, ``causal`` (see
  :class:`~fusioncim_plugin.workload.Workload`);
* **arch**: any Jinja variable of the design's arch spec, i.e. every
  ``{% set NAME = NAME | default(VALUE) %}`` of ``arch_specs/<spec>.yaml`` and of the
  templates it ``{% include %}``s (a variable the including spec sets unconditionally,
  e.g. ``WITH_OPCIM`` in ``ipcim_baseline.yaml``, is fixed and not sweepable). The type
  a value must have is the type of the default (int -> positive integer, float ->
  positive finite number, bool, str).

Layout::

    name: my_sweep            # results file <out>/my_sweep.csv (default: the file stem)
    fixed:  {model: llama3-8b, phase: prefill}      # one value for every point
    axes:                                           # cartesian product
      N_IP_MACROS: [4, 8, 16]
      seq_len: [1024, 4096]
    points:                   # optional listed subset; each point x the axes' product
      - {MACRO_ROWS: 128, MACRO_COLS: 128}
      - {MACRO_ROWS: 256, MACRO_COLS: 256}

Everything is checked (pydantic) before any point runs; the first problem raises one
:class:`SweepError` naming the axis.
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError,
                      model_validator)

POLICY_PARAMS = ("design", "softmax_order")
WORKLOAD_PARAMS = ("model", "phase", "seq_len", "batch", "causal")
BASE_PARAMS = POLICY_PARAMS + WORKLOAD_PARAMS
DEFAULTS = {"design": "fusioncim", "softmax_order": "default", "model": "llama3-8b",
            "phase": "prefill", "seq_len": 4096, "batch": 1, "causal": True}


class SweepError(ValueError):
    """A sweep file that cannot run; the message names the axis and what is allowed."""


# ----------------------------------------------------------------- arch-spec variables

# Names, types and ranges of arch variables: one path for every caller.
from ..variables import ArchVar, VariableError, arch_variables, check_value  # noqa: E402,F401


# ------------------------------------------------------------------------ value checks

PosInt = Annotated[int, Field(strict=True, gt=0)]
_ADAPTERS = {"int": TypeAdapter(PosInt), "bool": TypeAdapter(Annotated[bool, Field(strict=True)])}
_BASE_TEXT = {"seq_len": "a positive integer (tokens)", "batch": "a positive integer",
              "causal": "true or false", "phase": "prefill or decode"}


def _known_orders() -> list[str] | None:
    try:
        from ..softmax.policies import ORDER_POLICIES
    except Exception:  # the softmax package is optional here: then accept any name
        return None
    return sorted(ORDER_POLICIES) or None


def _check_base(name: str, v):
    """Validated, canonical value of a policy/workload parameter (raises ValueError)."""
    from ..designs import ALIASES, DESIGNS
    from ..workload import MODELS, get_model

    if name == "design":
        v = ALIASES.get(v, v)  # a former name -> the design's own
        if v not in DESIGNS:
            raise ValueError(f"unknown design {v!r}; allowed: {', '.join(DESIGNS)}")
        return v
    if name == "softmax_order":
        if v is None or v == "none":
            return "none"
        if not isinstance(v, str) or not v:
            raise ValueError(f"{v!r} is not an order name")
        known = _known_orders()
        if known is not None and v != "default" and v not in known:
            raise ValueError(f"unknown order {v!r}; allowed: default, none, "
                             f"{', '.join(known)}")
        return v
    if name == "model":
        if not isinstance(v, str):
            raise ValueError(f"unknown model {v!r}; allowed: {', '.join(sorted(MODELS))}")
        get_model(v)  # a built-in name or a model config file
        return v
    if name == "phase":
        TypeAdapter(Literal["prefill", "decode"]).validate_python(v)
        return v
    if name in ("seq_len", "batch"):
        return _ADAPTERS["int"].validate_python(v)
    if name == "causal":
        return _ADAPTERS["bool"].validate_python(v)
    raise AssertionError(name)


def _describe(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(err["msg"] for err in e.errors())
    return str(e)


# ------------------------------------------------------------------------- the spec

class SweepSpec(BaseModel):
    """A validated sweep file. ``points()`` lists every point as a full input dict."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    description: str = ""
    fixed: dict[str, Any] = {}
    axes: dict[str, Any] = {}
    points_: list[dict[str, Any]] | None = Field(None, alias="points")
    arch: str | None = None  # arch spec of the FusionCIM designs (designs.design_arch)
    baseline_arch: str | None = None  # arch spec of the IP-CIM baselines
    _arch_names: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _validate(self):
        self._check_structure()
        from ..arch import arch_path

        # exists (SpecError naming it otherwise); absolute, for the worker processes
        if self.arch is not None:
            self.arch = str(arch_path(self.arch).resolve())
        if self.baseline_arch is not None:
            self.baseline_arch = str(arch_path(self.baseline_arch).resolve())
        self._arch_names = self._check_names()
        self._canonicalise()
        self._check_per_design()
        return self

    # -- helpers
    def _sources(self):
        """(label, name, values) for every mention of a parameter."""
        for k, v in self.fixed.items():
            yield f"fixed {k!r}", k, [v]
        for k, vs in self.axes.items():
            yield f"axis {k!r}", k, vs
        for i, p in enumerate(self.points_ or []):
            for k, v in p.items():
                yield f"points[{i}] {k!r}", k, [v]

    def _check_structure(self):
        if self.points_ is not None and not self.points_:
            raise ValueError("points: is empty; list at least one point or drop `points:`")
        if not self.axes and not self.points_ and not self.fixed:
            raise ValueError("the sweep has no parameters: give `axes:` (and/or `points:`, "
                             "`fixed:`)")
        for k, vs in self.axes.items():
            if not isinstance(vs, list):
                raise ValueError(f"axis {k!r}: must be a list of values, got {vs!r} "
                                 f"(put a single value under `fixed:`)")
            if not vs:
                raise ValueError(f"axis {k!r}: is empty; give at least one value")
            dup = _dups(vs)
            if dup:
                raise ValueError(f"axis {k!r}: repeated value(s) {dup}")
            if k in self.fixed:
                raise ValueError(f"axis {k!r}: is also under `fixed:`; keep one")
        for i, p in enumerate(self.points_ or []):
            for k in p:
                if k in self.axes or k in self.fixed:
                    where = "axes" if k in self.axes else "fixed"
                    raise ValueError(f"points[{i}] {k!r}: is also under `{where}:`; keep one")
        for label, _, vs in self._sources():
            for v in vs:
                if isinstance(v, (list, dict)):
                    raise ValueError(f"{label}: value {v!r} must be a scalar")

    def _designs(self) -> list[str]:
        ds = [v for label, k, vs in self._sources() if k == "design" for v in vs]
        return ds or [DEFAULTS["design"]]

    def _check_names(self) -> list[str]:
        from ..designs import get_design

        for label, k, vs in self._sources():
            if k == "design":
                for v in vs:
                    try:
                        _check_base(k, v)
                    except ValueError as e:
                        raise ValueError(f"{label}: {_describe(e)}") from None
        specs = sorted({get_design(d).arch for d in self._designs()})
        known = {n: s for s in specs for n in arch_variables(s)}
        arch_names = set()
        for label, k, _ in self._sources():
            if k in BASE_PARAMS:
                continue
            if k not in known:
                close = difflib.get_close_matches(k, list(known) + list(BASE_PARAMS), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"{label}: unknown parameter.{hint} Allowed: workload "
                    f"({', '.join(WORKLOAD_PARAMS)}), policy ({', '.join(POLICY_PARAMS)}) "
                    f"or a variable of arch spec {'/'.join(specs)} "
                    f"({', '.join(sorted(known))})")
            arch_names.add(k)
        return sorted(arch_names)

    def _canonicalise(self):
        from ..designs import get_design

        specs = sorted({get_design(d).arch for d in self._designs()})

        def check(label, k, v):
            if k in BASE_PARAMS:
                try:
                    return _check_base(k, v)
                except (ValueError, ValidationError) as e:
                    what = f" ({k} is {_BASE_TEXT[k]})" if k in _BASE_TEXT else ""
                    raise ValueError(f"{label}: value {v!r}: {_describe(e)}{what}") from None
            try:
                return check_value(next(s for s in specs if k in arch_variables(s)), k, v)
            except VariableError as e:
                raise ValueError(f"{label}: value {v!r}: {e.reason} ({e.allowed})") from None

        self.fixed = {k: check(f"fixed {k!r}", k, v) for k, v in self.fixed.items()}
        self.axes = {k: [check(f"axis {k!r}", k, v) for v in vs] for k, vs in self.axes.items()}
        for k, vs in self.axes.items():
            dup = _dups(vs)
            if dup:
                raise ValueError(f"axis {k!r}: values {dup} repeat once made canonical")
        if self.points_ is not None:
            self.points_ = [{k: check(f"points[{i}] {k!r}", k, v) for k, v in p.items()}
                            for i, p in enumerate(self.points_)]

    def _check_per_design(self):
        """Every arch variable must exist in the arch spec of each design it meets."""
        from ..designs import get_design

        seen = set()
        for p in self.points():
            d = p["design"]
            names = tuple(k for k in self._arch_names if p.get(k) is not None)
            if (d, names) in seen:
                continue
            seen.add((d, names))
            spec = get_design(d).arch
            for k in names:
                if k not in arch_variables(spec):
                    label = next(lb for lb, n, _ in self._sources() if n == k)
                    raise ValueError(f"{label}: not a variable of arch spec {spec!r} used by "
                                     f"design {d!r} (sweep that design separately)")

    # -- public
    @property
    def arch_params(self) -> list[str]:
        """Arch-spec variables this sweep sets (sorted): the CSV's arch input columns."""
        return list(self._arch_names)

    @property
    def input_columns(self) -> list[str]:
        return list(BASE_PARAMS) + self.arch_params

    def points(self) -> list[dict]:
        """Every point, as {input column: value}; an arch variable a point does not set is
        None (= the spec's default). Duplicates (same inputs) are dropped."""
        base = {**DEFAULTS, **{k: None for k in self._arch_names}, **self.fixed,
                **{k: v for k, v in (("_arch", self.arch), ("_baseline_arch",
                                                           self.baseline_arch)) if v}}
        names = list(self.axes)
        out, seen = [], set()
        for sub in self.points_ or [{}]:
            for combo in itertools.product(*self.axes.values()):
                p = {**base, **sub, **dict(zip(names, combo))}
                key = point_key(p, self.input_columns)
                if key not in seen:
                    seen.add(key)
                    out.append(p)
        return out

    def __len__(self) -> int:
        return len(self.points())


def _dups(vs: list) -> list:
    """Values that occur more than once (True and 1 are different values here)."""
    seen, dup = set(), []
    for v in vs:
        k = (type(v).__name__, repr(v) if isinstance(v, (list, dict)) else v)
        if k in seen and v not in dup:
            dup.append(v)
        seen.add(k)
    return dup


def cell(v) -> str:
    """The CSV text of an input value (the resume key is made of these)."""
    return "" if v is None else str(v)


def point_key(p: dict, columns: list[str]) -> tuple[str, ...]:
    return tuple(cell(p.get(c)) for c in columns)


def _format_validation(e: ValidationError) -> str:
    msgs = []
    for err in e.errors():
        loc = [str(x) for x in err["loc"]]
        msg = re.sub(r"^Value error, ", "", err["msg"])
        if loc and loc[0] == "axes" and len(loc) > 1:
            where = f"axis {loc[1]!r}: "
        elif loc:
            where = ".".join(loc) + ": "
        else:
            where = ""
        msgs.append(where + msg)
    return msgs[0] if len(msgs) == 1 else "; ".join(msgs)


def parse_sweep(doc: dict, *, default_name: str = "sweep") -> SweepSpec:
    """Validate a sweep document (the YAML's mapping)."""
    if not isinstance(doc, dict):
        raise SweepError(f"a sweep file is a mapping with `axes:` / `points:` / `fixed:`, "
                         f"got {type(doc).__name__}")
    try:
        spec = SweepSpec.model_validate(doc)
    except ValidationError as e:
        raise SweepError(_format_validation(e)) from None
    if spec.name is None:
        spec.name = re.sub(r"[^A-Za-z0-9_.-]", "_", default_name) or "sweep"
    return spec


def load_sweep(path) -> SweepSpec:
    """Read and validate a sweep YAML file."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SweepError(f"sweep file {str(p)!r} not found") from None
    except yaml.YAMLError as e:
        raise SweepError(f"{p}: not valid YAML: {e}") from None
    try:
        return parse_sweep(doc, default_name=p.stem)
    except SweepError as e:
        raise SweepError(f"{p.name}: {e}") from None
