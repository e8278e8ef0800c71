"""Small helpers shared by the component models (no numbers live here)."""

from __future__ import annotations

import math

from hwcomponents.scaling import tech_node_area, tech_node_energy, tech_node_leak

from fusioncim_plugin.tables import Table


def pick(table: Table, key: str, given, unit: str | None = None):
    """``given`` if the caller passed it, else the table's reference-point value."""
    return table.ref(key, unit) if given is None else given


def scale_tech_node(model, target: float, reference: float) -> float:
    """Scale energy, area and leakage of ``model`` from ``reference`` to ``target`` (m).

    Uses hwcomponents' Stillmaker-Baas tech-node scaling. Latency and throughput are not
    scaled: the clock is an explicit constructor parameter of every model.
    """
    return model.scale(
        "tech_node",
        float(target),
        float(reference),
        area_scale_function=tech_node_area,
        energy_scale_function=tech_node_energy,
        leak_power_scale_function=tech_node_leak,
    )


def int_add_pj(table: Table, bits: float) -> float:
    """Energy (pJ, at the Horowitz node) of a ``bits``-wide integer add: linear in width."""
    return table.value("int_add_32b", "pJ") * bits / 32


def int_mult_pj(table: Table, bits_a: float, bits_b: float) -> float:
    """Energy (pJ, at the Horowitz node) of a ``bits_a`` x ``bits_b`` integer multiply."""
    return table.value("int_mult_32b", "pJ") * bits_a * bits_b / (32 * 32)


def horowitz_to(table: Table, node: float) -> float:
    """Energy factor from the table's Horowitz node (45 nm) to ``node``."""
    return tech_node_energy(node, table.ref("horowitz_tech_node", "m"))


def loglog(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear interpolation in (log x, log y), extrapolating the end segments
    (a single point: that value). Exact at the given points, continuous in x."""
    pts = sorted(points)
    if len(pts) == 1:
        return pts[0][1]
    i = 0
    while i < len(pts) - 2 and x > pts[i + 1][0]:
        i += 1
    (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))


def check_in_table(model: str, table: str, param: str, value: float, var: str,
                   per_var: float, queried: list[float], fix: str) -> None:
    """ValueError (one line) when ``value`` of constructor parameter ``param`` lies
    outside the range of the CACTI queries recorded in ``table``: the model interpolates
    between queried points and does not extrapolate. ``var`` is the arch-spec variable
    that sets it (``param`` = ``var`` x ``per_var``); ``fix`` says how to add a query."""
    lo, hi = min(queried), max(queried)
    if not lo <= value <= hi:
        def g(x):
            x = x / per_var
            return str(int(x)) if x == int(x) else f"{x:g}"

        raise ValueError(
            f"{model}: {var} = {g(value)} ({param}) is outside the configurations CACTI was "
            f"run for (energy_tables/{table}.yaml: {var} {g(lo)} .. {g(hi)}); set {var} in "
            f"that range, or {fix}")


def macro_cacti(table: Table, model: str, rows: int, cols: int, value) -> float:
    """``value(row)`` of the table's CACTI queries of macro arrays (one per rows x cols
    geometry, scripts/cacti_macros.py) for a ``rows`` x ``cols`` array: the queried row
    if there is one, else interpolated in log-log over cols at each queried row count,
    then over rows. Geometries outside the queried range are refused (MACRO_ROWS /
    MACRO_COLS of the arch spec)."""
    q = table.cacti_queries
    fix = "add it to {} in scripts/cacti_macros.py and rerun that script"
    check_in_table(model, table.path.stem, "rows", rows, "MACRO_ROWS", 1,
                   [r["rows"] for r in q], fix.format("ROWS"))
    check_in_table(model, table.path.stem, "cols", cols, "MACRO_COLS", 1,
                   [r["cols"] for r in q], fix.format("COLS"))
    by_rows = sorted({r["rows"] for r in q})
    return loglog([(n, loglog([(r["cols"], value(r)) for r in q if r["rows"] == n], cols))
                   for n in by_rows], rows)
