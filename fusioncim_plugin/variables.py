"""Arch-spec variables: the one place every override is checked.

Whatever sets a variable - ``--set NAME=VALUE``, a sweep file, or ``overrides=`` of the
Python API - goes through :func:`validate_overrides` before AccelForge sees it.

The known names are read from the arch spec itself: every
``{% set NAME = NAME | default(VALUE) %}`` of the spec, of the templates it
``{% include %}``s and of the files it ``include_text``s (so a variable someone adds to a
spec is known at once, and a plug-in spec that wraps ``fusioncim.yaml`` knows its
variables). The type of a value is the type of its default (int -> positive integer,
float -> positive finite number, bool, str); :data:`RULES` narrows a few variables
further to what the component models can honour. An unknown name is rejected with the
closest known one.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, create_model


@dataclass(frozen=True)
class ArchVar:
    name: str
    default: Any  # None: no default in the spec (a required variable)
    kind: str  # int | float | bool | str | any
    spec: str  # file that declares it


def _kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "any"


@functools.lru_cache(maxsize=64)
def _arch_variables(path: str) -> dict[str, ArchVar]:
    import jinja2
    import jinja2.meta
    from jinja2 import nodes

    env = jinja2.Environment()

    def walk(p: Path, forced: frozenset, seen: tuple) -> dict[str, ArchVar]:
        if p in seen or not p.exists():
            return {}
        ast = env.parse(p.read_text())
        declared: dict[str, ArchVar] = {}
        local_forced = set(forced)
        for a in ast.find_all(nodes.Assign):
            if not isinstance(a.target, nodes.Name):
                continue
            var, val = a.target.name, a.node
            if (isinstance(val, nodes.Filter) and val.name == "default"
                    and isinstance(val.node, nodes.Name) and val.node.name == var):
                default = val.args[0].value if val.args and isinstance(val.args[0], nodes.Const) \
                    else None
                declared.setdefault(var, ArchVar(var, default, _kind(default), p.name))
            else:
                local_forced.add(var)
        children = [c for c in jinja2.meta.find_referenced_templates(ast) if c]
        called = set()
        for c in ast.find_all(nodes.Call):  # AccelForge's include_text('file.yaml')
            if isinstance(c.node, nodes.Name):
                called.add(c.node.name)
                if (c.node.name == "include_text" and c.args
                        and isinstance(c.args[0], nodes.Const)):
                    children.append(c.args[0].value)
        out: dict[str, ArchVar] = {}
        for child in children:
            out.update(walk((p.parent / child).resolve(), frozenset(local_forced), seen + (p,)))
        out.update(declared)  # the including spec's default wins (it is set first)
        for var in jinja2.meta.find_undeclared_variables(ast):
            if var not in out and var not in env.globals and var not in called:
                out[var] = ArchVar(var, None, "any", p.name)
        for var in local_forced:
            if var not in declared:
                out.pop(var, None)
        return out

    return dict(sorted(walk(Path(path).resolve(), frozenset(), ()).items()))


def arch_variables(spec: str) -> dict[str, ArchVar]:
    """The settable Jinja variables of arch spec ``spec`` (stem in arch_specs/ or a path):
    name -> :class:`ArchVar`. A variable the including spec sets unconditionally (e.g.
    ``WITH_OPCIM`` in ``ipcim_baseline.yaml``) is fixed and not settable."""
    from .arch import arch_path

    return _arch_variables(str(arch_path(spec)))


# ------------------------------------------------------------------------ value rules

def _tech_nodes() -> tuple[float, float]:
    """The node range hwcomponents' tech-node scaling has data for (Stillmaker & Baas,
    Integration 2017): every model scales energy/area from its reference node with it."""
    from hwcomponents.scaling.techscaling import TECH_NODES

    return min(TECH_NODES), max(TECH_NODES)


def _dram_types() -> tuple[str, ...]:
    """DRAM types with an energy and a data rate in energy_tables/dram.yaml."""
    from .tables import load_table

    keys = load_table("dram").entries
    return tuple(sorted(k[: -len("_energy_per_bit")].upper() for k in keys
                        if k.endswith("_energy_per_bit")
                        and f"{k[: -len('_energy_per_bit')]}_data_rate" in keys))


def _rules() -> dict[str, tuple[Any, str]]:
    """Variables whose allowed values are narrower than "a positive <type>": name ->
    (annotated type, what is allowed and why)."""
    lo, hi = _tech_nodes()
    drams = _dram_types()
    return {
        "TECH_NODE": (Annotated[float, Field(strict=True, ge=lo, le=hi)],
                      f"a technology node in metres within hwcomponents' scaling data, "
                      f"{lo:g} .. {hi:g} (e.g. 28e-9)"),
        "DATA_BITS": (Annotated[int, Field(strict=True, ge=1, le=16)],
                      "an operand width in bits, 1 .. 16 (the macro models scale their "
                      "INT8 reference per bit)"),
        "ACC_BITS": (Annotated[int, Field(strict=True, ge=1, le=64)],
                     "an accumulator width in bits, 1 .. 64"),
        "DRAM_TYPE": (Literal[drams + tuple(d.lower() for d in drams)],
                      f"one of {', '.join(drams)} (energy_tables/dram.yaml)"),
        "RESCALE_GRANULARITY": (Literal["tile", "row"], "tile or row"),
        "IP_STATIONARY": (Literal["Q", "K", "V", "K | V"], "Q, K, V or 'K | V'"),
        "OPCIM_CIRCUIT": (Literal["near_memory", "in_array", "rmw_per_product"],
                          "near_memory, in_array or rmw_per_product (README 'OP-CIM "
                          "accumulation')"),
        "SOFTMAX_EXP": (Literal["ibert_int16", "taylor_fp16"],
                        "ibert_int16 or taylor_fp16 (energy_tables/softmax_unit.yaml)"),
        "OPCIM_LANES": (Annotated[int, Field(strict=True, gt=0)],
                        "a positive integer: near-memory MAC lanes per OP-CIM macro, at "
                        "most its stored accumulators (default: PV keeps pace with QK^T, "
                        "ceil(N_IP_MACROS x IP-CIM MACs per cycle per macro / N_OP_MACROS))"),
    }


_KIND = {
    "int": (Annotated[int, Field(strict=True, gt=0)], "a positive integer"),
    "float": (Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)],
              "a positive finite number"),
    "bool": (Annotated[bool, Field(strict=True)], "true or false"),
    "str": (Annotated[str, Field(strict=True, min_length=1)], "a non-empty string"),
    "any": (Annotated[bool | int | float | str, Field(union_mode="left_to_right")],
            "a number, string or boolean"),
}


def describe(var: ArchVar) -> str:
    """What ``var`` accepts, e.g. 'N_IP_MACROS is a positive integer (default 8)'."""
    text = _rules().get(var.name, _KIND[var.kind])[1]
    default = f", default {var.default!r}" if var.default is not None else ""
    return f"{var.name} is {text} ({var.spec}{default})"


@functools.lru_cache(maxsize=64)
def variables_model(path: str):
    """A pydantic model of the settable variables of the spec at ``path`` (every field
    optional: None = the spec's default)."""
    rules = _rules()
    fields = {}
    for name, var in _arch_variables(path).items():
        typ = rules.get(name, _KIND[var.kind])[0]
        fields[name] = (typ | None, None)
    return create_model(f"ArchVariables_{Path(path).stem}", __config__=ConfigDict(
        extra="forbid", frozen=True), **fields)


def check_name(spec: str, name: str, extra: tuple[str, ...] = ()) -> ArchVar:
    """The :class:`ArchVar` ``name`` of ``spec``, or ValueError with a did-you-mean."""
    known = arch_variables(spec)
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known) + list(extra), n=1) \
        or difflib.get_close_matches(name.upper(), list(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise ValueError(f"{name}: not a variable of arch spec {Path(str(spec)).name}{hint} "
                     f"(known: {', '.join(known)})")


class VariableError(ValueError):
    """A value a variable does not accept: ``reason`` (pydantic's) and ``allowed``."""

    def __init__(self, var: ArchVar, value, reason: str):
        self.var, self.value, self.reason, self.allowed = var, value, reason, describe(var)
        super().__init__(f"{var.name} = {value!r}: {reason}; {self.allowed}")


def check_value(spec: str, name: str, value):
    """The validated value of variable ``name`` of ``spec`` (ValueError naming it)."""
    var = check_name(spec, name)
    try:
        out = getattr(variables_model(str(_path(spec))).model_validate({name: value}), name)
    except ValidationError as e:
        reason = "; ".join(err["msg"] for err in e.errors())
        if (name == "TECH_NODE" and isinstance(value, (int, float))
                and not isinstance(value, bool) and value > 1e-6):
            reason += f" (TECH_NODE is in metres: {value} nm is {value}e-9)"
        raise VariableError(var, value, reason) from None
    if isinstance(out, float) and not math.isfinite(out):
        raise VariableError(var, value, "must be finite")
    return out


def _path(spec) -> Path:
    from .arch import arch_path

    return arch_path(str(spec))


def validate_overrides(spec, overrides: dict | None) -> dict:
    """Every override checked against the variables of ``spec``: unknown names (with the
    closest known one), types and ranges. Returns the canonical values."""
    return {k: check_value(spec, k, v) for k, v in (overrides or {}).items()}
