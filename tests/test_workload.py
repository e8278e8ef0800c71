"""Workload shapes and closed forms, checked against hand-computed numbers."""

import pytest
from pydantic import ValidationError

from fusioncim_plugin.workload import MODELS, Workload


def test_llama3_shapes_from_official_configs():
    m8, m70 = MODELS["llama3-8b"], MODELS["llama3-70b"]
    assert (m8.layers, m8.hidden, m8.q_heads, m8.kv_heads, m8.head_dim, m8.ffn) == \
        (32, 4096, 32, 8, 128, 14336)
    assert (m70.layers, m70.hidden, m70.q_heads, m70.kv_heads, m70.head_dim, m70.ffn) == \
        (80, 8192, 64, 8, 128, 28672)
    assert Workload(model="llama3-8b").group == 4
    assert Workload(model="llama3-70b").group == 8


@pytest.mark.parametrize("model,phase,L,batch,expected", [
    # prefill, causal: 2 matmuls x heads x L(L+1)/2 x head_dim
    ("llama3-8b", "prefill", 4096, 1, 2 * 32 * (4096 * 4097 // 2) * 128),  # 68_736_253_952
    ("llama3-70b", "prefill", 8192, 1, 2 * 64 * (8192 * 8193 // 2) * 128),  # 549_822_922_752
    # decode: one query row per head attends to all L keys
    ("llama3-8b", "decode", 32768, 4, 2 * 32 * 32768 * 128 * 4),  # 1_073_741_824
    ("llama3-70b", "decode", 32768, 1, 2 * 64 * 32768 * 128),  # 536_870_912
])
def test_attention_macs_closed_form(model, phase, L, batch, expected):
    assert Workload(model=model, phase=phase, seq_len=L, batch=batch).attention_macs() == expected


def test_causal_is_about_half_the_square():
    c = Workload(model="llama3-8b", seq_len=4096).attention_macs()
    full = Workload(model="llama3-8b", seq_len=4096, causal=False).attention_macs()
    assert full == 2 * 32 * 4096 * 4096 * 128
    assert c / full == pytest.approx(4097 / 8192)


def test_linear_macs_llama3_8b():
    # per token: Wq 4096x4096, Wk/Wv 4096x1024, Wo 4096x4096, FFN 3 x 4096x14336
    per_token = 4096 * 4096 * 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    assert Workload(model="llama3-8b", seq_len=4096).linear_macs() == 4096 * per_token
    assert Workload(model="llama3-8b", phase="decode", seq_len=4096, batch=2).linear_macs() \
        == 2 * per_token


@pytest.mark.parametrize("kwargs,field,words", [
    ({"model": "llama3-13b"}, "model", "allowed: llama3-70b, llama3-8b"),
    ({"model": "llama3-8b", "seq_len": 0}, "seq_len", "greater than 0"),
    ({"model": "llama3-8b", "seq_len": -5}, "seq_len", "greater than 0"),
    ({"model": "llama3-8b", "seq_len": 4096.5}, "seq_len", "positive integer"),
    ({"model": "llama3-8b", "seq_len": "4k"}, "seq_len", "integer"),
    ({"model": "llama3-8b", "phase": "train"}, "phase", "'prefill' or 'decode'"),
    ({"model": "llama3-8b", "batch": 0}, "batch", "greater than 0"),
])
def test_bad_workload_names_the_field(kwargs, field, words):
    with pytest.raises(ValidationError) as ei:
        Workload(**kwargs)
    errs = ei.value.errors()
    assert errs[0]["loc"] == (field,)
    assert words in str(ei.value)


@pytest.mark.parametrize("wl", [
    Workload(model="llama3-8b", phase="prefill", seq_len=512, causal=False),
    Workload(model="llama3-70b", phase="decode", seq_len=1024, batch=2),
])
def test_layer_einsum_workload_matches_the_closed_forms(wl):
    """workloads/layer.yaml (AccelForge Einsums of a whole layer) does exactly the MACs
    that Workload.linear_macs() and (non-causal) attention_macs() count."""
    import math

    import accelforge as af

    from fusioncim_plugin.arch import WORKLOAD_DIR

    w = af.Workload.from_yaml(WORKLOAD_DIR / "layer.yaml", top_key="workload",
                              jinja_parse_data=wl.jinja_parse_data())
    sizes = dict(w.rank_sizes)
    n = {e.name: math.prod(sizes[v.upper()] for v in e.rank_variables) for e in w.einsums}
    assert sum(n[k] for k in ("Q", "K_new", "V_new", "Z", "A", "U", "Y")) == wl.linear_macs()
    assert n["S"] + n["O"] == wl.attention_macs()
    assert n["P"] == wl.score_elements()
    assert n["HGU"] == wl.tokens * wl.cfg.ffn  # SwiGLU elementwise product
