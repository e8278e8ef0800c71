"""Architecture: an AccelForge arch spec, instantiated and costed through hwcomponents.

Inputs: an arch spec in ``arch_specs/`` (AccelForge YAML, sizes as Jinja variables) and
overrides for those variables. Output: an :class:`Arch` holding the evaluated spec
variables and, per component and action, the energy (J per action) and throughput
(actions/s) that hwcomponents returned for the ``component_class`` named in the spec.
AccelForge does the parsing, pydantic validation, expression evaluation and component
model look-up; we only read the results.

Units follow AccelForge: a memory ``read``/``write`` action moves one bit; a compute
``compute`` action is one MAC (or one element for the softmax unit).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._data import REPO, data_dir  # noqa: E402  (REPO: the source tree, for tests)

ARCH_DIR = Path(os.environ.get("FUSIONCIM_ARCH_SPECS", data_dir("arch_specs")))
WORKLOAD_DIR = data_dir("workloads")
MAPPING_DIR = data_dir("mappings")


class SpecError(ValueError):
    """A malformed or inconsistent spec; the message names the field and the fix."""


@dataclass(frozen=True)
class ComponentCost:
    name: str
    actions: dict[str, float]  # action -> J per action
    throughput: dict[str, float]  # action -> actions/s, all instances
    area: float  # m^2, all instances
    leak_power: float  # W, all instances


@dataclass(frozen=True)
class Arch:
    name: str
    path: Path
    variables: dict
    components: dict[str, ComponentCost] = field(repr=False)

    def energy(self, component: str, action: str) -> float:
        """J per action of ``component``."""
        try:
            return self.components[component].actions[action]
        except KeyError:
            raise SpecError(
                f"{self.path.name}: component {component!r} has no action {action!r}; "
                f"known: { {c: sorted(v.actions) for c, v in self.components.items()} }"
            ) from None

    def var(self, name: str):
        try:
            return self.variables[name]
        except KeyError:
            raise SpecError(
                f"{self.path.name}: the `variables:` section has no {name!r}; add it "
                f"(known: {', '.join(sorted(self.variables))})"
            ) from None

    @property
    def area(self) -> float:
        return sum(c.area for c in self.components.values())

    @property
    def leak_power(self) -> float:
        return sum(c.leak_power for c in self.components.values())


def arch_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    p = ARCH_DIR / f"{name}.yaml"
    if not p.exists():
        known = sorted(x.stem for x in ARCH_DIR.glob("*.yaml"))
        raise SpecError(f"unknown arch spec {name!r}; known: {', '.join(known)} "
                        f"(or give a path to an AccelForge arch YAML)")
    return p


def load_arch(name: str, overrides: dict | None = None) -> Arch:
    """Instantiate and cost arch spec ``name`` (a file stem in arch_specs/ or a path).
    ``overrides`` are checked first (fusioncim_plugin.variables: names, types, ranges)."""
    path = arch_path(name)
    items = tuple(sorted((overrides or {}).items()))
    try:
        hash(items)
    except TypeError:  # e.g. a list value: let the validation name it
        _validated(path, overrides)
        raise
    return _load_arch(str(path), items)


def _validated(path: Path, overrides: dict | None) -> dict:
    from .variables import validate_overrides

    try:
        return validate_overrides(path, overrides)
    except ValueError as e:
        raise SpecError(str(e)) from None


@functools.lru_cache(maxsize=256)
def _load_arch(path: str, items: tuple) -> Arch:
    """Cached in this process and on disk (spec_cache), keyed by the overrides as given:
    an entry is stored only after they passed the validation, which depends only on
    what the key covers (the spec files and this package's sources)."""
    from . import spec_cache

    files = [path, str(WORKLOAD_DIR / "attention.yaml")]
    key = spec_cache.key(files, dict(items))
    cached = spec_cache.load(key)
    if cached is not None:
        return _arch_from_dict(cached, path)
    overrides = _validated(Path(path), dict(items))
    for k, v in overrides.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise SpecError(f"{Path(path).name}: {k} = {v} is negative; sizes, counts, "
                            f"rates and energies must be >= 0")
    arch = _instantiate(path, files, overrides)
    spec_cache.store(key, _arch_to_dict(arch))
    return arch


def _arch_to_dict(a: Arch) -> dict:
    return {"name": a.name, "variables": a.variables,
            "components": {n: vars(c) for n, c in a.components.items()}}


def _arch_from_dict(d: dict, path: str) -> Arch:
    return Arch(name=d["name"], path=Path(path), variables=d["variables"],
                components={n: ComponentCost(**c) for n, c in d["components"].items()})


def _instantiate(path: str, files: list[str], overrides: dict) -> Arch:
    """Parse and cost the spec through AccelForge + hwcomponents."""
    import accelforge as af

    try:
        spec = af.Spec.from_yaml(*files, jinja_parse_data=overrides)
        spec = spec.calculate_component_costs()
    except Exception as e:  # AccelForge/pydantic/hwcomponents errors -> one clear line
        raise SpecError(_explain(Path(path).name, e)) from None

    variables = dict(spec.variables)
    for k, v in variables.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise SpecError(f"{Path(path).name}: variables.{k} = {v} is negative; "
                            f"sizes, counts and rates must be >= 0")
    comps = {}
    for node in spec.arch.nodes:
        if not hasattr(node, "actions"):
            continue
        # AccelForge's action throughput already counts n_parallel_instances;
        # total_area / total_leak_power are over all instances.
        comps[node.name] = ComponentCost(
            name=node.name,
            actions={a.name: float(a.energy) for a in node.actions},
            throughput={a.name: float(a.throughput) for a in node.actions},
            area=float(node.total_area or 0),
            leak_power=float(node.total_leak_power or 0),
        )
    _check_models(spec, overrides, Path(path).name)
    return Arch(name=Path(path).stem, path=Path(path), variables=variables, components=comps)


# Constructor attributes of a macro model that the closed-form dataflows also use, and the
# spec variable that sets both.
MODEL_ATTRIBUTES = {"rows": "MACRO_ROWS", "cols": "MACRO_COLS", "input_bits": "DATA_BITS",
                    "weight_bits": "DATA_BITS", "acc_bits": "ACC_BITS"}


def _check_models(spec, overrides: dict, fname: str) -> None:
    """A component model must be the component the dataflow counts for: every attribute
    of MODEL_ATTRIBUTES the spec passes must be what the instantiated model has, and a
    model whose constructor declares its own default for one (a plugged 64 x 64 macro)
    must not be silently overridden by the spec's default."""
    import inspect

    for node in spec.arch.nodes:
        model = getattr(node, "component_model", None)
        extra = getattr(node, "extra_attributes_for_component_model", None)
        if model is None or extra is None:
            continue
        given = {k: getattr(extra, k) for k in MODEL_ATTRIBUTES if hasattr(extra, k)}
        try:
            params = inspect.signature(type(model).__init__).parameters
        except (TypeError, ValueError):
            params = {}
        cls = type(model).__name__
        for attr, spec_value in given.items():
            var = MODEL_ATTRIBUTES[attr]
            has = getattr(model, attr, None)
            if isinstance(has, (int, float)) and has != spec_value:
                raise SpecError(
                    f"{fname}: {node.name}: {cls} has {attr}={has:g} but the spec models "
                    f"{var}={spec_value:g}; the model does not take `{attr}`, so set "
                    f"--set {var}={has:g} (or give {cls}.__init__ a `{attr}` argument)")
            p = params.get(attr)
            own = p.default if p is not None else None
            if (isinstance(own, (int, float)) and not isinstance(own, bool)
                    and own != spec_value and var not in overrides):
                raise SpecError(
                    f"{fname}: {node.name}: {cls} declares {attr}={own:g} (its constructor "
                    f"default) but the spec's default {var}={spec_value:g} overrides it; "
                    f"set --set {var}={own:g} to model your macro as declared (or "
                    f"--set {var}={spec_value:g} to keep the spec's)")


def _explain(fname: str, e: Exception) -> str:
    """Turn a framework exception into one message that names the field and the fix."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        errs = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        return f"{fname}: invalid spec: " + "; ".join(errs[:5])
    msg = " ".join(str(e).split())
    if "is not supported by any models" in msg:
        name = msg.split("Component ", 1)[-1].split(" is not supported", 1)[0]
        return (f"{fname}: component_class {name!r} is not a model hwcomponents knows. Use "
                f"one that `hwcomponents.get_models()` lists (ours: IPCIMMacro, OPCIMMacro, "
                f"SoftmaxUnit, GlobalBufferSRAM, DRAM) or install your plugin as a module "
                f"named `hwcomponents_<name>` (docs/plugging_a_macro.md).")
    if "Failed to evaluate" in msg:
        where = msg.split(" Problem encountered", 1)[0].replace("EvaluationError in ", "")
        return (f"{fname}: {where}. A name in that expression is not defined: add it "
                f"to the spec's `variables:` section or fix the spelling.")
    root = _model_error(msg)
    if root:  # a component model's own error: the root cause first, whole
        return f"{fname}: {root}"
    return f"{fname}: invalid spec: {type(e).__name__}: {msg}"


def _model_error(msg: str) -> str:
    """hwcomponents reports a model that failed as one long text (the query, its logs
    with the model's exception and traceback, why each model declined). Pull out the
    node, the class and the model's own error or reason."""
    import re

    if "Can not find an model" not in msg and "Can not find a model" not in msg:
        return ""
    cls = re.search(r"component_class=(\w+)", msg)
    node = re.search(r"\bname=(\w+)", msg)
    where = f"{node.group(1) if node else '?'} (component_class {cls.group(1) if cls else '?'})"
    err = re.search(r"\| \| (\w+(?:Error|Exception)): (.*?) \| \| Traceback", msg)
    if err:
        return (f"{where}: the model raised {err.group(1)}: {err.group(2)}; fix that value "
                f"(--set / the spec) or the model's table")
    why = msg.split("Why models did not estimate:", 1)[-1].strip(" |.")
    why = re.sub(r"(\s*\|\s*)+", "; ", why).strip("; .")
    why = why.split("To see a list of available component models", 1)[0].strip("; .")
    return (f"{where}: no model could cost it: {why}. Give the class the actions the "
            f"spec lists for this node (docs/plugging_a_macro.md)")
