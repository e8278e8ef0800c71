"""AccelForge's FFM mapper on the FusionCIM spec vs our hand-written QO-stationary LoopTree.

Small shape: LLaMA-3-8B head_dim, L = 256, one KV head with one query head
(B=1, H=1, G=1, M=P=256, E=F=128), non-causal (AccelForge cannot express the mask).
"""

import json

import pytest

from fusioncim_plugin.cli import main
from fusioncim_plugin.mapper import (
    evaluate_looptree,
    fusioncim_spec,
    run_mapper,
    shape_data,
)
from fusioncim_plugin.workload import Workload

WL = Workload(model="llama3-8b", phase="prefill", seq_len=256, causal=False)
SMALL = dict(kv_heads=1, group=1)


@pytest.fixture(scope="module")
def runs():
    return [run_mapper(WL, **SMALL) for _ in range(2)]


def test_mapper_best_not_worse_than_hand_written(runs):
    r = runs[0]
    assert r.shape == {"B": 1, "H": 1, "G": 1, "M": 256, "P": 256, "E": 128, "F": 128}
    assert r.reduced and r.full_shape["H"] == 8 and r.full_shape["G"] == 4
    assert r.hand_mapping == "qo_stationary" and r.hand_block_q == 128
    assert r.best.energy_j > 0 and r.best.latency_s > 0


def test_mapper_is_reproducible(runs):
    a, b = runs
    assert a.looptree == b.looptree
    assert a.best.energy_j == b.best.energy_j and a.best.latency_s == b.best.latency_s
    assert a.hand.energy_j == b.hand.energy_j


def test_mapper_best_vs_the_hand_written_lane_passes(runs):
    """near_memory OP-CIM: the hand LoopTree makes lane passes (LANE_ROWS x LANE_COLS O
    elements in the lane registers, then per key one P word and one V word latched from
    the staging SRAMs). The arch spec lists the lane registers (OPCIMAccumulator, one
    accumulating register per lane) above the word latches, so the mapper's space has
    these passes, and it finds them. The one difference: the staging SRAMs are
    double-buffered (2 x BLOCK_KV keys: the next block is written into one bank while
    the lanes read the other), and AccelForge's capacity model lets the mapper use both
    banks as one 2 x BLOCK_KV block, so the accumulators in the OP-CIM arrays are read
    and written half as often. Everything else, the latency included, is the same."""
    r = runs[0]
    b, q = r.best, r.hand
    bkv, rows = r.blocks["BLOCK_KV"], r.blocks["LANE_ROWS"]
    assert f"!Temporal {{rank_variable: p, tile_shape: {2 * bkv}}}" in r.looptree
    assert f"!Temporal {{rank_variable: m, tile_shape: {rows}}}" in r.looptree  # a lane pass
    for k in set(b.energy_by_action_j) | set(q.energy_by_action_j):
        mine, hand = b.energy_by_action_j.get(k, 0.0), q.energy_by_action_j.get(k, 0.0)
        if k.startswith("OPCIMArray.") and not k.endswith("leak"):
            # one read and one write per element per KV block (the first block's read is
            # the tile's read-out's: reads = writes): 256/(2 BLOCK_KV) vs 256/BLOCK_KV
            assert mine == pytest.approx(hand / 2, rel=1e-6), k
        else:
            assert mine == pytest.approx(hand, rel=1e-6, abs=1e-18), k  # float32 mapper
    assert b.latency_s == pytest.approx(q.latency_s, rel=1e-6) and b.energy_j < q.energy_j
    tree = r.looptree
    for line in ("!Storage {tensors: [Q], component: IPCIMArray}",
                 "!Storage {tensors: [O], component: OPCIMArray}",
                 "!Storage {tensors: [S], component: StagingS}",
                 "!Storage {tensors: [P], component: StagingP}",
                 "!Storage {tensors: [O], component: OPCIMAccumulator}",
                 "!Temporal {rank_variable: p, tile_shape: 1}",
                 "!Compute {einsum: P, component: SoftmaxUnit}"):
        assert line in tree, line


def test_best_looptree_loads_back_with_the_same_energy(runs, tmp_path):
    r = runs[0]
    f = tmp_path / "best.yaml"
    f.write_text(r.looptree)
    again = evaluate_looptree(shape_data(WL, **SMALL) | r.blocks, f)
    assert again.energy_j == pytest.approx(r.best.energy_j, rel=1e-12)
    assert again.latency_s == pytest.approx(r.best.latency_s, rel=1e-12)


def test_fusioncim_constraints_hold_in_the_best_mapping(runs):
    tree = runs[0].looptree
    assert "!Compute {einsum: S, component: IPCIM_MAC}" in tree
    assert "!Compute {einsum: P, component: SoftmaxUnit}" in tree
    assert "!Compute {einsum: O, component: OPCIM_MAC}" in tree
    for line in tree.splitlines():  # S and P never in DRAM or the global buffer
        if "component: DRAM" in line or "component: GlobalBuffer" in line:
            assert "S" not in line.split("[")[1].split("]")[0].split(", ")
            assert "P" not in line.split("[")[1].split("]")[0].split(", ")


def test_compute_units_are_pinned_to_their_einsums():
    """QK^T only on IP-CIM, softmax only on the softmax unit, PV only on OP-CIM."""
    spec, _ = fusioncim_spec(shape_data(WL, **SMALL))
    enabled = {n.name: n.enabled for n in spec.arch.nodes if type(n).__name__ == "Compute"}
    assert enabled == {"IPCIM_MAC": 'len(All) == 3 and "S" in Outputs',
                       "SoftmaxUnit": "len(All) == 2",
                       "OPCIM_MAC": 'len(All) == 3 and "O" in Outputs'}


def test_cli_map_writes_a_loadable_looptree(tmp_path, capsys):
    import gc

    out = tmp_path / "m.yaml"
    frozen = gc.get_freeze_count()
    assert main(["map", "--seq-len", "128", "--kv-heads", "1", "--group", "1",
                 "--metric", "edp", "--out", str(out), "--json"]) == 0
    assert gc.get_freeze_count() == frozen  # gc.freeze() only in the `fusioncim` program
    r = json.loads(capsys.readouterr().out)
    assert r["metric"] == "edp" and r["shape"]["M"] == 128
    assert out.read_text() == r["looptree"]
    again = evaluate_looptree(shape_data(Workload(model="llama3-8b", seq_len=128, causal=False),
                                         kv_heads=1, group=1) | r["blocks"], out)
    assert again.energy_j == pytest.approx(r["best"]["energy_j"], rel=1e-12)


@pytest.mark.parametrize("argv,msg", [
    (["map", "--design", "ipcim-unfused"], "design"),
    (["map", "--metric", "speed"], "metric"),
    (["map", "--kv-heads", "0"], "kv-heads"),
    (["map", "--group", "0"], "group"),
])
def test_cli_map_bad_input(argv, msg, capsys):
    assert main(argv + ["--seq-len", "128"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err


def test_hand_looptree_reusing_the_mappers_costs_equals_a_fresh_evaluation(runs):
    """run_mapper evaluates the hand LoopTree with the mapper run's costed per-Einsum
    specs (no second component costing): every energy and the latency must equal a
    standalone evaluation that costs the spec itself."""
    from fusioncim_plugin.arch import MAPPING_DIR

    r = runs[0]
    fresh = evaluate_looptree(shape_data(WL, **SMALL) | r.blocks,
                              MAPPING_DIR / "qo_stationary.yaml", remember=False)
    assert fresh == r.hand  # energy, latency, per component, per action: exactly


# --------------------------------------------------------------------------------------
# The QO-stationary constraint (CIM_STATIONARY) and the design's blocks
# --------------------------------------------------------------------------------------
def _mapper_run(wl, overrides, metric):
    """AccelForge's mapper in two steps: (pmapping groups per Einsum, the metric of the
    best mapping)."""
    import accelforge.mapper.FFM.main as ffm

    from fusioncim_plugin.mapper import _af_metric, af_jobs, scratch_dir

    spec, _ = fusioncim_spec(shape_data(wl, **SMALL), overrides=overrides)
    spec.mapper.metrics = _af_metric(metric)
    with scratch_dir(), af_jobs(1):
        pm = ffm.make_pmappings(spec, print_progress=False)
        ms = ffm.join_pmappings(pm, require_all_einsums=False, print_progress=False,
                                metrics=spec.mapper.metrics)
    groups = {e: len(g) for e, g in pm.einsum2pmappings.items()}
    (col,) = [c for c in ms.data.columns if c.startswith("Total<SEP>") and "mapping" not in c]
    return groups, float(ms.data[col].min())


PAPER = {"N_IP_MACROS": 16, "N_OP_MACROS": 32, "GLB_BYTES": 2**20, "CLOCK_HZ": 400e6,
         "SOFTMAX_EXP": "taylor_fp16"}


@pytest.mark.parametrize("model,seq_len,overrides,metric", [
    ("llama3-8b", 1024, {}, "edp"),
    ("llama3-70b", 2048, PAPER, "energy"),
])
def test_cim_stationary_prunes_the_search_and_loses_nothing(model, seq_len, overrides,
                                                            metric):
    """CIM_STATIONARY (default true) forbids the mapper to re-fetch Q into IP-CIM or O
    into OP-CIM. It must shrink the search of QK^T and PV (fewer pmapping groups: the
    orders with a key loop above the stationary operand are gone), leave the softmax's
    alone, and find exactly the mapping the unconstrained search finds."""
    wl = Workload(model=model, phase="prefill", seq_len=seq_len, causal=False)
    g_on, best_on = _mapper_run(wl, overrides | {"CIM_STATIONARY": True}, metric)
    g_off, best_off = _mapper_run(wl, overrides | {"CIM_STATIONARY": False}, metric)
    assert g_on["S"] < g_off["S"] and g_on["O"] < g_off["O"]
    assert g_on["P"] == g_off["P"]
    assert best_on == pytest.approx(best_off, rel=1e-9)


def test_cim_stationary_constrains_only_a_q_stationary_ip_cim():
    """Q-stationary IP-CIM (FusionCIM): Q and O may not be re-fetched. K-stationary
    IP-CIM (the `hybrid` ablation) rewrites K per Q tile: only O is constrained."""
    def no_refetch(overrides):
        spec, _ = fusioncim_spec(shape_data(WL, **SMALL), overrides=overrides)
        return {n.name: str(n.tensors.no_refetch_from_above) for n in spec.arch.nodes
                if n.name in ("IPCIMArray", "OPCIMArray")}

    assert no_refetch({}) == {"IPCIMArray": "Q", "OPCIMArray": "O"}
    assert no_refetch({"IP_STATIONARY": "K"}) == {"IPCIMArray": "~All", "OPCIMArray": "O"}
    assert no_refetch({"CIM_STATIONARY": False}) == {"IPCIMArray": "~All",
                                                     "OPCIMArray": "~All"}


def test_map_uses_the_blocks_evaluate_chooses(runs):
    """The mapper's spec (score-pipeline size), the hand LoopTree and the referee use
    the blocks `fusioncim evaluate` picks for the design; a --set block is kept."""
    from fusioncim_plugin.evaluation import evaluate

    r = runs[0]
    ev = evaluate("fusioncim", WL)
    assert (r.blocks["BLOCK_Q"], r.blocks["BLOCK_KV"]) == (ev.params["block_q"],
                                                           ev.params["block_kv"])
    assert r.hand_block_q == r.blocks["BLOCK_Q"]
    fixed = run_mapper(WL, overrides={"BLOCK_KV": 32}, **SMALL)
    assert fixed.blocks["BLOCK_KV"] == 32 and "BLOCK_KV=32" in fixed.looptree


def test_map_explains_the_looptree_it_printed():
    """On a full (unreduced) shape `map` explains its gap to `evaluate` with the
    referee's AccelForge run of the hand LoopTree: the same LoopTree, blocks and spec as
    the hand row, so the same energy and latency - and one AccelForge run, not two."""
    from fusioncim_plugin import mapper

    wl = Workload(model="llama3-8b", phase="prefill", seq_len=128, causal=False)
    mapper._AF_MODEL.clear()
    r = run_mapper(wl)
    line = next(x for x in r.explanation if "AccelForge, hand LoopTree" in x).split()
    assert float(line[-4]) == pytest.approx(r.hand.energy_j, rel=1e-4)
    assert float(line[-2]) == pytest.approx(r.hand.latency_s, rel=1e-4)
    assert [k[1] for k in mapper._AF_MODEL] == [str(mapper.MAPPING_DIR.resolve()
                                                    / "qo_stationary.yaml")]


# --------------------------------------------------------------------------------------
# Component models handed to AccelForge (pin_component_models)
# --------------------------------------------------------------------------------------
def test_pinned_component_models_cost_exactly_as_all_installed_models():
    """`map` hands AccelForge only the installed models its components name; AccelForge
    must cost the hand LoopTree exactly as when it searches every installed model."""
    import accelforge as af
    from accelforge.model.main import evaluate_mapping

    from fusioncim_plugin import mapper
    from fusioncim_plugin.arch import MAPPING_DIR

    data = shape_data(WL, **SMALL) | {"BLOCK_Q": 128, "BLOCK_KV": 32, "LANE_ROWS": 16,
                                      "LANE_COLS": 128}
    pinned = mapper.evaluate_looptree(data, MAPPING_DIR / "qo_stationary.yaml",
                                      remember=False)
    files = [mapper.arch_path("fusioncim"), mapper.WORKLOAD_DIR / "attention.yaml",
             MAPPING_DIR / "qo_stationary.yaml"]
    spec = af.Spec.from_yaml(*files, jinja_parse_data=data)
    assert spec.config.use_installed_component_models  # AccelForge's default: all of them
    with mapper.scratch_dir(), mapper.af_jobs(1):
        everything = mapper._evaluated(evaluate_mapping(spec))
    assert pinned == everything


def test_pinned_component_models_find_a_plugged_macro(monkeypatch):
    """A macro from an installed hwcomponents_* module (the plug-in example) is among the
    models handed over; a class no installed model provides leaves AccelForge's default
    (so its own error names the class)."""
    import hwcomponents.find_models as fm

    from fusioncim_plugin._data import REPO
    from fusioncim_plugin.mapper import pin_component_models

    plugin = REPO / "examples" / "my_macro_plugin"
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setattr(fm, "_ALL_ESTIMATORS", None)
    try:
        spec, _ = fusioncim_spec(shape_data(WL, **SMALL),
                                 arch=str(plugin / "fusioncim_my_macro.yaml"))
        classes = {n.component_class.lower() for n in spec.arch.nodes} - {"dummy"}
        got = {m._component_name().lower() if isinstance(m._component_name(), str) else
               m._component_name()[0].lower() for m in spec.config.component_models}
        assert classes <= got and not spec.config.use_installed_component_models
        spec.arch.nodes[0].component_class = "NoSuchMacro"
        spec.config.component_models = []
        spec.config.use_installed_component_models = True
        assert pin_component_models(spec).config.use_installed_component_models
    finally:
        fm._ALL_ESTIMATORS = None
