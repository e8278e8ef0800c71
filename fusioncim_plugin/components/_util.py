"""Small helpers shared by the component models (no numbers live here)."""

from __future__ import annotations

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
