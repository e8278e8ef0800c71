"""Our closed-form dataflow vs AccelForge's own model of the same LoopTree.

On a small non-causal shape (AccelForge's analytical model cannot express the causal
mask) the QO-stationary mapping in mappings/qo_stationary.yaml, evaluated by
`accelforge.model.main.evaluate_mapping`, must give exactly the action counts (and so
the energies) that fusioncim_plugin.dataflow.qo_stationary computes - including the
OP-CIM array's accumulator reads/writes - and the same OP-CIM latency per component,
for every OP-CIM circuit (OPCIM_CIRCUIT).
"""

import os

import pytest

from fusioncim_plugin.arch import MAPPING_DIR, WORKLOAD_DIR, arch_path, load_arch
from fusioncim_plugin.dataflow import q_tile_rows, qo_stationary
from fusioncim_plugin.workload import Workload

CHECKED = [
    ("DRAM", "read", "Q"), ("DRAM", "read", "K"), ("DRAM", "read", "V"),
    ("DRAM", "write", "O"),
    ("GlobalBuffer", "read", "Q"), ("GlobalBuffer", "write", "Q"),
    ("GlobalBuffer", "read", "K"), ("GlobalBuffer", "write", "K"),
    ("GlobalBuffer", "read", "V"), ("GlobalBuffer", "write", "V"),
    ("GlobalBuffer", "read", "O"), ("GlobalBuffer", "write", "O"),
    ("IPCIMArray", "write", "Q"),
    ("OPCIMArray", "read", "O"), ("OPCIMArray", "write", "O"),
]
CIRCUITS = ["near_memory", "in_array", "rmw_per_product"]
REL = 1e-7  # AccelForge evaluates energies and latencies in single precision
COMPUTE = {"IPCIM_MAC": "S", "SoftmaxUnit": "P", "OPCIM_MAC": "O"}


@pytest.fixture(scope="module", params=CIRCUITS)
def both(request, tmp_path_factory):
    import accelforge as af
    from accelforge.model.main import evaluate_mapping

    wl = Workload(model="llama3-8b", phase="prefill", seq_len=256, causal=False)
    ov = {"OPCIM_CIRCUIT": request.param}
    arch = load_arch("fusioncim", ov)
    br = q_tile_rows(arch, wl)
    spec = af.Spec.from_yaml(
        arch_path("fusioncim"), WORKLOAD_DIR / "attention.yaml",
        MAPPING_DIR / "qo_stationary.yaml",
        jinja_parse_data=wl.jinja_parse_data() | ov | {"BLOCK_Q": br})
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("af"))  # AccelForge may write render files
    try:
        res = evaluate_mapping(spec)
    finally:
        os.chdir(cwd)
    return wl, arch, br, res, qo_stationary(arch, wl)


def test_action_counts_identical(both):
    wl, arch, br, res, ours = both
    af_counts = res.actions(per_component=True, per_tensor=True)
    for comp, action, tensor in CHECKED:
        assert af_counts[(comp, tensor, action)] == ours.total(comp, action, tensor), \
            (comp, action, tensor)
    for comp, tensor in COMPUTE.items():
        assert af_counts[(comp, "None", "compute")] == ours.total(comp, "compute", tensor), comp


def test_hand_count_of_the_small_shape(both):
    # 8 KV heads x 4 query heads, L = 256, E = 128, INT8, Br = 128 -> 2 Q tiles per head.
    wl, arch, br, res, ours = both
    assert br == 128
    qkv_bits = 32 * 256 * 128 * 8  # Q (and O) of all 32 query heads
    kv_bits = 8 * 256 * 128 * 8  # K (or V) of the 8 KV heads
    assert ours.total("DRAM", "read", "Q") == qkv_bits
    assert ours.total("DRAM", "read", "K") == kv_bits  # once: fits the 2 MiB buffer
    assert ours.total("GlobalBuffer", "read", "K") == kv_bits * 4 * 2  # per query head, per Q tile
    assert ours.total("IPCIM_MAC", "compute") == 32 * 256 * 256 * 128


def test_energies_identical(both):
    """Same counts x the same hwcomponents energies: AccelForge's per-action energy
    convention (J per bit moved / per compute) is the one evaluate() uses. AccelForge
    sums in single precision: agreement to its 2^-24 rounding (REL)."""
    wl, arch, br, res, ours = both
    af_energy = res.energy(per_component=True, per_tensor=True, per_action=True)
    for comp, action, tensor in CHECKED:
        mine = ours.total(comp, action, tensor) * arch.energy(comp, action)
        assert float(af_energy[(comp, tensor, action)]) == pytest.approx(mine, rel=REL), \
            (comp, action, tensor)
    for comp, tensor in COMPUTE.items():
        mine = ours.total(comp, "compute", tensor) * arch.energy(comp, "compute")
        assert float(af_energy[(comp, "None", "compute")]) == pytest.approx(mine, rel=REL), comp


def test_the_one_documented_difference(both):
    """AccelForge charges a read of the stationary Q from IPCIMArray for every MAC (and
    O read/write per PV MAC in OPCIMArray). In a CIM macro that access *is* the MAC:
    the published per-MAC energy (energy_tables/ipcim_macro.yaml) already includes it,
    so our dataflow does not charge it again. This test pins that difference."""
    wl, arch, br, res, ours = both
    af_counts = res.actions(per_component=True, per_tensor=True)
    assert af_counts[("IPCIMArray", "Q", "read")] == 8 * ours.total("IPCIM_MAC", "compute")
    assert ours.total("IPCIMArray", "read") == 0


def test_opcim_accumulator_counts_by_hand(both):
    """Every product updates its accumulator (in_array, rmw_per_product) or every KV block
    of 64 keys does (near_memory); each update reads and writes ACC_BITS (the first
    read of an element is skipped, the read-out adds one)."""
    wl, arch, br, res, ours = both
    macs = 32 * 256 * 256 * 128
    updates = macs // 64 if arch.var("opcim_circuit") == "near_memory" else macs
    assert ours.total("OPCIM_MAC", "compute", "O") == macs
    for action in ("read", "write"):
        assert ours.total("OPCIMArray", action, "O") == updates * 16


def test_opcim_latency_per_component_identical(both):
    """Review item 1: AccelForge's latency of the OP-CIM lanes (OPCIM_MAC) and of the
    OP-CIM array port (OPCIMArray) on this LoopTree equals the closed form's, and the
    closed form's pipeline is paced by them: OP-CIM time (lanes and port overlap, the
    read-out does not) plus, per tile, the Q write into IP-CIM and the O read-out. (The
    old model: 8 cycles per key in the closed form, 128x that in AccelForge's array.)"""
    wl, arch, br, res, ours = both
    clock = arch.var("clock_hz")
    af_lat = {k: float(v) for k, v in res.latency(per_component=True).items()}
    for comp in ("OPCIM_MAC", "OPCIMArray"):
        assert af_lat[comp] == pytest.approx(ours.component_cycles[comp] / clock, rel=REL), comp
    n_tiles = 32 * 256 // br
    q_write = br * 128 * 8 / (8 * 128)  # Q tile bits / (8 macros x 128-bit rows per cycle)
    rd_rate = 16 * 128 * (2 if arch.var("opcim_circuit") == "in_array" else 1)
    readout = br * 128 * 16 / rd_rate
    op = max(af_lat["OPCIM_MAC"], af_lat["OPCIMArray"] - n_tiles * readout / clock)
    assert ours.compute_cycles / clock == pytest.approx(
        op + n_tiles * (q_write + readout) / clock, rel=REL)
    assert ours.compute_cycles / clock >= max(af_lat["OPCIM_MAC"], af_lat["OPCIMArray"]) * (1 - 1e-7)
