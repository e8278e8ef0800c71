"""The block staging SRAMs: StagingS (a KV block's S columns, waiting for the block's row
max: block-wise online softmax) and the near_memory OP-CIM lanes' StagingP, StagingV (the
block's P and V held beside the lanes), charged per staged element and per broadcast
word read, with CACTI area and leakage that grow with the blocks (arch_specs/fusioncim.yaml,
components/staging_buffer.py, dataflow.opcim_staging, energy_tables/staging_buffer.yaml).

Expected values are computed here from the table rows (CACTI queries) and the circuit's
rule: per key the softmax unit writes the tile's P column and the buffer the V row; the
2048 lanes (16 macros x 128) cover 16 O rows x 128 columns per pass, so per key and pass
one P word (16 values) and one V word (128 values) are read: every P element once, every
V element once per pass over the rows (BLOCK_Q / 16 passes).
"""

import math

import jinja2
import pytest
import yaml

from fusioncim_plugin.arch import MAPPING_DIR, load_arch
from fusioncim_plugin.components.staging_buffer import StagingSRAM
from fusioncim_plugin.dataflow import lane_group, qo_stationary, staged_arch
from fusioncim_plugin.evaluation import evaluate
from fusioncim_plugin.referee import free_levels, referee
from fusioncim_plugin.tables import load_table
from fusioncim_plugin.workload import Workload

Q = {(r["rows"], r["width"]): r for r in load_table("staging_buffer").cacti_queries}
WL = Workload(model="llama3-8b", phase="prefill", seq_len=256, causal=False)


def bank(rows, width):
    return Q[(rows, width)]


def test_default_spec_staging_by_hand():
    """BLOCK_Q=128, BLOCK_KV=64 (the spec's defaults): P banks of 64 keys x 8 words of
    16 INT8 values (128 b), V banks of 64 keys x 1 word of 128 values (1024 b); two of
    each; energy per bit and area/leakage straight from the CACTI rows."""
    a = load_arch("fusioncim")
    p, v = a.components["StagingP"], a.components["StagingV"]
    bp, bv = bank(512, 128), bank(64, 1024)
    assert p.actions["read"] == pytest.approx(bp["read_pj_per_bit"] * 1e-12, rel=1e-12)
    assert p.actions["write"] == pytest.approx(bp["write_pj_per_bit"] * 1e-12, rel=1e-12)
    assert v.actions["read"] == pytest.approx(bv["read_pj_per_bit"] * 1e-12, rel=1e-12)
    assert p.area == pytest.approx(2 * bp["area_mm2"] * 1e-6, rel=1e-12)
    assert v.area == pytest.approx(2 * bv["area_mm2"] * 1e-6, rel=1e-12)
    assert p.leak_power == pytest.approx(2 * bp["leak_power_w"], rel=1e-12)
    assert v.leak_power == pytest.approx(2 * bv["leak_power_w"], rel=1e-12)
    # one word per clock per port: 128 b and 1024 b x 200 MHz
    assert p.throughput["read"] == pytest.approx(128 * 200e6)
    assert v.throughput["write"] == pytest.approx(1024 * 200e6)
    # 0.118548 mm^2 in all: not free
    assert (p.area + v.area) * 1e6 == pytest.approx(2 * (0.011055 + 0.048219), rel=1e-9)


def test_interpolation_between_queries_by_hand():
    """96 words (between the 64- and 128-word rows) x 128 b: log-linear in rows."""
    t = math.log(96 / 64) / math.log(2)
    lo, hi = bank(64, 128)["area_mm2"], bank(128, 128)["area_mm2"]
    assert StagingSRAM(rows=96, width=128, banks=1).area == pytest.approx(
        math.exp((1 - t) * math.log(lo) + t * math.log(hi)) * 1e-6, rel=1e-12)
    with pytest.raises(ValueError, match="outside the CACTI queries.*scripts/cacti_staging.py"):
        StagingSRAM(rows=2 ** 17, width=128)


def test_area_scales_with_block_q_x_block_kv():
    a = load_arch("fusioncim")
    area = {}
    for bq in (32, 64, 128):
        for bc in (64, 128, 256):
            s = staged_arch(a, WL, bq, bc)
            area[bq, bc] = s.components["StagingP"].area
            # the P store holds 2 x BLOCK_Q x BLOCK_KV INT8 values: banks x words x width
            words, width = 2 * bc * math.ceil(bq / 16), 16 * 8
            assert words * width == 2 * bq * bc * 8
            assert area[bq, bc] == pytest.approx(2 * bank(words // 2, width)["area_mm2"] * 1e-6)
    for bq, bc in area:
        if (2 * bq, bc) in area:
            assert area[2 * bq, bc] > area[bq, bc]
        if (bq, 2 * bc) in area:
            assert area[bq, 2 * bc] > area[bq, bc]
    # doubling the block doubles the P bits: CACTI's area ratio, 1024 vs 512 words
    assert area[128, 128] / area[128, 64] == pytest.approx(
        bank(1024, 128)["area_mm2"] / bank(512, 128)["area_mm2"])


def test_staged_arch_equals_accelforge_instantiation():
    """The closed form's staging at other blocks (staged_arch, no AccelForge run) is what
    AccelForge's instantiation of the spec at those blocks gives; also the lane pass."""
    for ov, bq, bc in [({}, 64, 256), ({"OPCIM_LANES": 8}, 128, 32),
                       ({"N_OP_MACROS": 32, "CLOCK_HZ": 4e8}, 128, 128)]:
        base = load_arch("fusioncim", ov)
        af = load_arch("fusioncim", ov | {"BLOCK_Q": bq, "BLOCK_KV": bc})
        ours = staged_arch(base, WL, bq, bc)
        for n in ("StagingS", "StagingP", "StagingV"):
            assert ours.components[n] == af.components[n]
        assert lane_group(af, 128, bq) == (af.var("lane_rows"), af.var("lane_cols"))


def test_counts_and_energy_by_hand():
    """8B, 256 keys, non-causal, 128-row tiles, 64-key blocks: 8 KV heads x 4 query heads
    x 2 tiles, each streaming 256 keys."""
    a = load_arch("fusioncim")
    c = qo_stationary(a, WL, block_q=128, block_kv=64)
    runs = 8 * 4 * 2
    col = 128 * 256 * 8  # one tile's P (or V) bits over its 256 keys
    assert c.total("StagingP", "write", "P") == runs * col
    assert c.total("StagingP", "read", "P") == runs * col  # every P element once
    assert c.total("StagingV", "write", "V") == runs * col
    assert c.total("StagingV", "read", "V") == runs * 8 * col  # once per 16-row pass
    # the block's S columns wait for the row max: written once, read once
    assert c.total("StagingS", "write", "S") == c.total("StagingS", "read", "S") == runs * col
    r = evaluate("fusioncim", WL, softmax_order=None,
                 overrides={"BLOCK_Q": 128, "BLOCK_KV": 64})
    bp, bv = bank(512, 128), bank(64, 1024)
    e = r.energy_breakdown_j
    assert e["StagingP.write[P]"] == pytest.approx(runs * col * bp["write_pj_per_bit"] * 1e-12)
    assert e["StagingV.read[V]"] == pytest.approx(runs * 8 * col * bv["read_pj_per_bit"] * 1e-12)
    assert r.attention.energy_by_category_j["OP-CIM staging"] == pytest.approx(
        runs * col * 1e-12 * (bp["read_pj_per_bit"] + bp["write_pj_per_bit"]
                              + bv["write_pj_per_bit"] + 8 * bv["read_pj_per_bit"]))
    assert r.area_mm2["StagingP"] == pytest.approx(2 * bp["area_mm2"])
    bs = bank(64, 1024)  # S banks: 64 keys x one 128-value column
    assert r.attention.energy_by_category_j["score staging"] == pytest.approx(
        runs * col * 1e-12 * (bs["read_pj_per_bit"] + bs["write_pj_per_bit"]))
    assert r.area_mm2["StagingS"] == pytest.approx(2 * bs["area_mm2"])


def test_energy_at_block_kv_256_charges_the_staging():
    """A 256-key block at 4K (causal): P banks of 2048 words x 128 b, V banks of 256 x
    1024 b; their energy, area and leakage are in the result."""
    wl = Workload(model="llama3-8b", phase="prefill", seq_len=4096)
    r = evaluate("fusioncim", wl, softmax_order=None,
                 overrides={"BLOCK_Q": 128, "BLOCK_KV": 256})
    bp, bv = bank(2048, 128), bank(256, 1024)
    n_p = r.action_counts["StagingP.read[P]"]
    assert n_p == r.action_counts["StagingP.write[P]"] > 0
    assert r.action_counts["StagingV.read[V]"] == 8 * r.action_counts["StagingV.write[V]"]
    staging = r.attention.energy_by_category_j["OP-CIM staging"]
    assert staging == pytest.approx(
        n_p * (bp["read_pj_per_bit"] + bp["write_pj_per_bit"]) * 1e-12
        + r.action_counts["StagingV.write[V]"] * (bv["write_pj_per_bit"]
                                                  + 8 * bv["read_pj_per_bit"]) * 1e-12)
    assert staging > 0.02 * r.attention.energy_j
    assert r.area_mm2["StagingP"] + r.area_mm2["StagingV"] == pytest.approx(
        2 * (bp["area_mm2"] + bv["area_mm2"]))


def test_closed_form_equals_accelforge_for_the_staging():
    r = referee("fusioncim", Workload(model="llama3-8b", phase="prefill", seq_len=768,
                                      causal=False))
    assert r.residuals() == []
    bq, bc = r.looptree["BLOCK_Q"], r.looptree["BLOCK_KV"]
    runs = 8 * 4 * (768 // bq)
    for key, n in [(("StagingS", "write", "S"), runs * bq * 768 * 8),
                   (("StagingS", "read", "S"), runs * bq * 768 * 8),
                   (("StagingP", "write", "P"), runs * bq * 768 * 8),
                   (("StagingP", "read", "P"), runs * bq * 768 * 8),
                   (("StagingV", "write", "V"), runs * 128 * 768 * 8),
                   (("StagingV", "read", "V"), runs * (bq // 16) * 128 * 768 * 8)]:
        assert r.af.actions[key] == r.ours[key] == n
        assert r.af.energy[key] == pytest.approx(n * r.arch.energy(key[0], key[1]), rel=1e-7)
        assert r.arch.energy(key[0], key[1]) > 0
    assert r.arch.components["StagingP"].area == load_arch(
        "fusioncim", {"BLOCK_Q": bq, "BLOCK_KV": bc}).components["StagingP"].area


def _nodes(text):
    loader = type("L", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda ld, tag, node: {
        "tag": tag, **ld.construct_mapping(node, deep=True)})
    return yaml.load(text, Loader=loader)["mapping"]["nodes"]


RANKS = {"Q": "me", "K": "pe", "V": "pf", "S": "mp", "P": "mp", "O": "mf"}


def _held(nodes, above, out):
    """(component, tensor, {rank: extent held}) of every Storage node: the extent of a
    rank is the tile shape of the innermost loop over it above the node (else whole)."""
    above = dict(above)
    for n in nodes:
        if n["tag"] == "Temporal":
            above[n["rank_variable"]] = n["tile_shape"]
        elif n["tag"] == "Storage":
            for t in n["tensors"]:
                out.append((n["component"], t, {r: above.get(r, math.inf) for r in RANKS[t]}))
        elif n["tag"] in ("Sequential", "Nested"):
            for b in n["nodes"]:
                _held(b["nodes"] if b["tag"] == "Nested" else [b], above, out)
    return out


NEAR = {"S": "StagingS", "V": "StagingV", "P": "StagingP"}


@pytest.mark.parametrize("mapping,ov,homes", [
    ("qo_stationary", {}, NEAR),
    ("qo_stationary", {"OPCIM_LANES": 8}, NEAR),
    ("qo_stationary", {"N_OP_MACROS": 32}, NEAR),
    ("qo_stationary", {"OPCIM_CIRCUIT": "in_array"}, {"S": "StagingS"}),
    # the hybrid ablation (K-stationary IP-CIM): S passes row by row, P and V wait
    ("hybrid_k_stationary", {"IP_STATIONARY": "K"},
     {"K": "IPCIMArray", "V": "StagingV", "P": "StagingP"}),
])
def test_no_free_level_holds_a_block(mapping, ov, homes):
    """In the near_memory LoopTrees (and QO-stationary's in_array one) a Dummy (0 J,
    0 mm^2) level holds at most one row or column segment of a tensor (the input
    latches, the score pipeline): the waiver for true pipeline registers. The only
    exception is the lane registers (OPCIMAccumulator): one O element per lane, costed
    in OPCIMMacro's area and compute energy. What a KV block needs held sits in the
    staging SRAMs (or the arrays), which cost energy and area."""
    a = load_arch("fusioncim", ov)
    bq, bc = 128, 128
    rows, cols = lane_group(a, 128, bq)
    text = jinja2.Template((MAPPING_DIR / f"{mapping}.yaml").read_text()).render(
        BLOCK_Q=bq, BLOCK_KV=bc, LANE_ROWS=rows, LANE_COLS=cols, **ov)
    held = _held(_nodes(text), {}, [])
    free = free_levels(a)
    assert {"InputLatch", "ScorePipe"} <= free
    staging = {c for c in homes.values() if c.startswith("Staging")}
    assert not free & staging and staging <= set(a.components)
    for comp, t, ext in held:
        if comp not in free:
            continue
        if comp == "OPCIMAccumulator":
            assert math.prod(ext.values()) <= a.var("n_op_macros") * a.var("opcim_lanes")
            continue
        assert sum(1 for x in ext.values() if x > 1) <= 1, (comp, t, ext)  # a row / column
    assert {t: comp for comp, t, ext in held if ext.get("p") == bc and comp not in free} \
        == homes
    s = staged_arch(a, WL, bq, bc)
    for n in staging:
        c = s.components[n]
        assert c.area > 0 and c.leak_power > 0 and min(c.actions.values()) > 0


def test_staging_ports_show_in_latency():
    """When the staging cannot feed the lanes the latency shows it: in decode the Q rows
    are replicated with different keys, so a pass needs one V word per replica. With the
    staging ports infinitely fast the compute time drops."""
    import dataclasses

    wl = Workload(model="llama3-8b", phase="decode", seq_len=4096)
    a = staged_arch(load_arch("fusioncim"), wl, 128, 64)
    c = qo_stationary(a, wl, block_q=128, block_kv=64)
    fast = dict(a.components)
    for n in ("StagingP", "StagingV"):
        fast[n] = dataclasses.replace(a.components[n], throughput={"read": math.inf,
                                                                   "write": math.inf})
    c_fast = qo_stationary(dataclasses.replace(a, components=fast), wl, block_q=128,
                           block_kv=64)
    v_words = c.total("StagingV", "read") / (128 * 8)
    assert c.compute_cycles >= v_words  # one V word per clock
    assert c_fast.compute_cycles < c.compute_cycles
