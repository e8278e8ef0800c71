"""The baselines' dataflows as AccelForge LoopTrees vs their closed forms.

mappings/unfused_kv_stationary.yaml, fused_kv_stationary.yaml and hybrid_k_stationary.yaml
(the `mapping` of designs ipcim-unfused, ipcim-fused and hybrid) are evaluated by
`accelforge.model.main.evaluate_mapping` on the design's arch spec and overrides, on
small non-causal LLaMA-3-8B shapes (AccelForge cannot express the causal mask), with the
tile shapes the closed forms in fusioncim_plugin.baselines use. Closed forms run without
rescale (softmax_order=None).

Identical, to the bit / MAC: DRAM traffic per tensor; global-buffer reads and writes of
Q, K and V; the K (and V) writes into the IP-CIM arrays; the MACs of QK^T and of PV and
the softmax elements, per Einsum; the buffer traffic of P (unfused) and of O (hybrid).

Not expressible in AccelForge, so only related, not equal (each pinned below):
* the transposed read of K ("K^T": one extra write and read of every K row written into
  IP-CIM through the buffer's transpose stage) - AccelForge has no such tensor;
* S and the O partial sums are held at accumulator width (ACC_BITS) in the buffer, every
  tensor at DATA_BITS in AccelForge's buffer: their traffic agrees in *elements*;
* the unfused softmax is two passes over S (max; exp and sum): the closed form reads S
  twice, AccelForge's one elementwise Einsum once;
* the final 1/l normalization of O (read the accumulator, write normalized O) is not
  in the Einsum cascade: in the KV-stationary baselines it is one more buffer read of
  the O accumulator and one more write of O than AccelForge's read-back/write counts;
* the unfused row block (as many query rows as let S and P fit the buffer) is a closed-
  form policy; AccelForge takes it as the given tile shape (BLOCK_Q);
* as for FusionCIM (test_accelforge_agreement.py), AccelForge charges a read of the
  stationary operand in the IP-CIM arrays per MAC, which the published per-MAC energy
  already contains. (The OP-CIM accumulator traffic agrees: hybrid's O branch has the
  same lane-register level as mappings/qo_stationary.yaml.)
"""

import os
from types import SimpleNamespace

import pytest

from fusioncim_plugin.arch import MAPPING_DIR, WORKLOAD_DIR, arch_path, load_arch
from fusioncim_plugin.designs import get_design
from fusioncim_plugin.workload import Workload

# seq_len per design: unfused 512 -> two K/V tiles of 384 + 128 keys (the O partial sums
# are read back once); fused / hybrid 256 -> two Q tiles of 128 rows x four KV blocks.
SEQ = {"ipcim-unfused": 512, "ipcim-fused": 256, "hybrid": 256}
DESIGNS = list(SEQ)


def _evaluate(name: str, workdir):
    import accelforge as af
    from accelforge.model.main import evaluate_mapping

    d = get_design(name)
    overrides = dict(d.overrides)
    arch = load_arch(d.arch, overrides)
    wl = Workload(model="llama3-8b", phase="prefill", seq_len=SEQ[name], causal=False)
    ours = d.dataflow(arch, wl, **dict(d.options))  # rescale=None: softmax_order=None
    e, db = wl.cfg.head_dim, arch.var("data_bits")
    tiles = {
        "BLOCK_Q": min(ours.block_q, wl.seq_len),  # rows of a Q tile / unfused row block
        "BLOCK_KV": arch.var("block_kv"),  # keys of a KV block (fused designs)
        # key rows one load of the IP-CIM arrays holds (unfused K / V tiles)
        "BLOCK_K": min(wl.seq_len, arch.var("n_ip_macros") * arch.var("macro_rows")
                       * arch.var("macro_cols") // (db * e)),
    }
    spec = af.Spec.from_yaml(arch_path(d.arch), WORKLOAD_DIR / "attention.yaml",
                             MAPPING_DIR / f"{d.mapping}.yaml",
                             jinja_parse_data=wl.jinja_parse_data() | overrides | tiles)
    cwd = os.getcwd()
    os.chdir(workdir)  # AccelForge may write render files
    try:
        res = evaluate_mapping(spec)
    finally:
        os.chdir(cwd)
    return SimpleNamespace(
        wl=wl, arch=arch, ours=ours, tiles=tiles, db=db, acc=arch.var("acc_bits"),
        af=res.actions(per_component=True, per_tensor=True),
        af_einsum=res.actions(per_einsum=True, per_component=True, per_tensor=True))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _evaluate(name, tmp_path_factory.mktemp("af"))
        return cache[name]

    return get


def _af(r, comp, action, tensor) -> float:
    return float(r.af.get((comp, tensor, action), 0.0))


@pytest.mark.parametrize("name", DESIGNS)
def test_dram_traffic_identical(evaluated, name):
    """Every DRAM access, per tensor and action (Q, K, V in once, O out once; S and P
    never reach DRAM on these shapes)."""
    r = evaluated(name)
    af = {(t, a): v for (c, t, a), v in r.af.items() if c == "DRAM" and v}
    ours = {(t, a): v for (c, a, t, v) in r.ours.entries if c == "DRAM"}
    assert af == ours
    assert set(ours) == {("Q", "read"), ("K", "read"), ("V", "read"), ("O", "write")}


@pytest.mark.parametrize("name", DESIGNS)
def test_buffer_q_k_v_and_array_writes_identical(evaluated, name):
    r = evaluated(name)
    for comp, action, tensor in [("GlobalBuffer", a, t) for a in ("read", "write")
                                 for t in ("Q", "K", "V")]:
        assert _af(r, comp, action, tensor) == r.ours.total(comp, action, tensor), \
            (comp, action, tensor)
    # K (and V, on the IP-CIM-only substrate) re-written into the arrays: nothing else.
    af_w = {t: v for (c, t, a), v in r.af.items() if c == "IPCIMArray" and a == "write" and v}
    ours_w = {t: v for (c, a, t, v) in r.ours.entries if c == "IPCIMArray" and a == "write"}
    assert af_w == ours_w
    assert set(ours_w) == ({"K"} if name == "hybrid" else {"K", "V"})


@pytest.mark.parametrize("name", DESIGNS)
def test_compute_identical_per_einsum(evaluated, name):
    """QK^T MACs on IP-CIM, softmax elements, PV MACs on IP-CIM (V stationary) or OP-CIM."""
    r = evaluated(name)
    pv = "OPCIM_MAC" if name == "hybrid" else "IPCIM_MAC"
    expect = {("S", "IPCIM_MAC"): r.ours.total("IPCIM_MAC", "compute", "S"),
              ("P", "SoftmaxUnit"): r.ours.total("SoftmaxUnit", "compute", "P"),
              ("O", pv): r.ours.total(pv, "compute", "O")}
    got = {(e, c): v for (e, c, t, a), v in r.af_einsum.items() if a == "compute" and v}
    assert got == expect
    L, e = r.wl.seq_len, r.wl.cfg.head_dim
    assert expect[("S", "IPCIM_MAC")] == 32 * L * L * e  # 32 query heads, full square


def test_unfused_score_traffic(evaluated):
    """S and P through the buffer: P identical; S in elements (accumulator width in the
    closed form); S read twice by the closed form's two-pass softmax, once by AccelForge."""
    r = evaluated("ipcim-unfused")
    n = 32 * r.wl.seq_len ** 2  # score elements, one row block per query head
    assert r.tiles["BLOCK_Q"] == r.wl.seq_len  # the row block is the whole sequence here
    for a in ("read", "write"):
        assert _af(r, "GlobalBuffer", a, "P") == r.ours.total("GlobalBuffer", a, "P") == n * r.db
    assert _af(r, "GlobalBuffer", "write", "S") / r.db == r.ours.total(
        "GlobalBuffer", "write", "S") / r.acc == n
    assert _af(r, "GlobalBuffer", "read", "S") / r.db == n
    assert r.ours.total("GlobalBuffer", "read", "S") == 2 * n * r.acc


@pytest.mark.parametrize("name,acc_tensor", [("ipcim-unfused", "O_psum"),
                                             ("ipcim-fused", "O_acc"), ("hybrid", None)])
def test_buffer_o_traffic(evaluated, name, acc_tensor):
    """Hybrid: O accumulates in OP-CIM and passes the buffer once - identical.
    KV-stationary baselines: O partial sums are written to the buffer after every K/V
    tile (or block) and read back by the next one; AccelForge's O write/read counts equal
    the closed form's accumulator counts in elements. Its last read is the write-back to
    DRAM, the closed form's the 1/l normalization, which then writes normalized O and
    reads it out for DRAM (the closed form's GlobalBuffer O entries)."""
    r = evaluated(name)
    o_elems = 32 * r.wl.seq_len * r.wl.cfg.head_dim
    if acc_tensor is None:
        for a in ("read", "write"):
            assert _af(r, "GlobalBuffer", a, "O") == r.ours.total("GlobalBuffer", a, "O") \
                == o_elems * r.db
        return
    k_tiles = -(-r.wl.seq_len // (r.tiles["BLOCK_K"] if name == "ipcim-unfused"
                                  else r.tiles["BLOCK_KV"]))
    assert k_tiles > 1  # partial sums are read back
    for a in ("read", "write"):
        af_elems = _af(r, "GlobalBuffer", a, "O") / r.db
        assert af_elems == r.ours.total("GlobalBuffer", a, acc_tensor) / r.acc \
            == k_tiles * o_elems, a
        assert r.ours.total("GlobalBuffer", a, "O") == o_elems * r.db  # normalization pass


@pytest.mark.parametrize("name", DESIGNS)
def test_what_accelforge_cannot_express(evaluated, name):
    r = evaluated(name)
    # K^T: a design without a transposed write port (dcim) passes every K row written
    # into IP-CIM through the buffer's transpose stage once more; AccelForge has no such
    # tensor. Bitline-transpose designs (TranCIM's macro) write K directly.
    assert not any(t == "K^T" for (_, t, _) in r.af)
    kt = r.ours.total("IPCIMArray", "write", "K")
    via_buffer = dict(get_design(name).options)["transpose"] == "buffer"
    assert r.ours.total("GlobalBuffer", "write", "K^T") == (kt if via_buffer else 0)
    assert r.ours.total("GlobalBuffer", "read", "K^T") == (kt if via_buffer else 0)
    # The stationary operand is read per MAC in AccelForge; the MAC energy contains it.
    s_macs = r.ours.total("IPCIM_MAC", "compute", "S")
    assert _af(r, "IPCIMArray", "read", "K") == s_macs * r.db
    assert r.ours.total("IPCIMArray", "read") == 0
    if name == "hybrid":
        # OP-CIM (default near_memory circuit): the accumulator array is read and written
        # once per element and KV block (the first read skipped, the read-out added);
        # AccelForge counts the same from the LoopTree's lane-register level.
        macs = r.ours.total("OPCIM_MAC", "compute", "O")
        updates = macs // r.tiles["BLOCK_KV"]
        for action in ("read", "write"):
            assert _af(r, "OPCIMArray", action, "O") == updates * r.acc
            assert r.ours.total("OPCIMArray", action, "O") == updates * r.acc
        assert _af(r, "OPCIM_MAC", "compute", "None") == macs
    else:
        assert _af(r, "IPCIMArray", "read", "V") == r.ours.total("IPCIM_MAC", "compute", "O") * r.db


def test_hybrid_needs_a_score_staging_block(tmp_path):
    """K-stationary IP-CIM produces S row by row, OP-CIM consumes P column by column: the
    hybrid LoopTree stages a BLOCK_Q x BLOCK_KV block of S and P in ScorePipe, which is
    invalid with FusionCIM's ScorePipe (one S and one P column of the tile) - hence
    fusioncim.yaml sizes ScorePipe for the block when IP_STATIONARY is not Q. (With
    near_memory OP-CIM the block's P waits in the costed StagingP and only an S row
    passes ScorePipe: tests/test_staging.py.)"""
    import accelforge as af
    from accelforge.model.main import InvalidMappingError, evaluate_mapping

    d = get_design("hybrid")
    wl = Workload(model="llama3-8b", phase="prefill", seq_len=256, causal=False)
    data = wl.jinja_parse_data() | dict(d.overrides) | {"BLOCK_Q": 128, "BLOCK_KV": 64,
                                                         "OPCIM_CIRCUIT": "in_array"}
    spec = af.Spec.from_yaml(arch_path(d.arch), WORKLOAD_DIR / "attention.yaml",
                             MAPPING_DIR / f"{d.mapping}.yaml", jinja_parse_data=data)
    pipe = spec.arch.find("ScorePipe")
    assert pipe.size == "2 * block_q * block_kv * data_bits"
    pipe.size = "2 * n_ip_macros * macro_cols"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(InvalidMappingError, match="ScorePipe"):
            evaluate_mapping(spec)
    finally:
        os.chdir(cwd)
