"""Named set-ups: arch-spec variables applied under the caller's own overrides.

``paper``: the evaluation set-up of Xuan et al., arXiv 2604.25317 (2026), as reported by
a public review note of the paper (GitHub Memory4ever/AI-System-Design,
V3_FUSIONCIM_25317_BOUNDED_REVIEW.md, April 2026; secondary source, citing the paper's
Sections III-IV and Tables I-II): 16 Hybrid Engines, a 1 MB global buffer, 400 MHz,
INT8 bit-serial IP/OP-CIM MACs, an FP16 softmax unit with a Taylor-series exp,
LLaMA-3-8B at 256-8192 tokens. Where the paper is silent we assume (and say so):
  * a Hybrid Engine = 1 IP-CIM macro (16 Q rows of 128 INT8 values) + 2 OP-CIM macros
    (the same 16 rows' O at 16-bit accumulators), our 128 x 128 macro; so FusionCIM has
    16 + 32 macros and a 256-row Q tile, and every IP-CIM-only baseline the same budget
    of 48 macros;
  * 1 MB = 2^20 bytes;
  * one softmax lane per Q row of the tile (256 lanes: 16 per engine);
  * DRAM, macro geometry and block sizes as in our defaults (block sizes are searched).
"""

from __future__ import annotations

PAPER_GRID = [256, 512, 1024, 2048, 4096, 8192]  # LLaMA-3-8B prefill tokens

_PAPER_COMMON = {"GLB_BYTES": 2**20, "CLOCK_HZ": 400e6, "DATA_BITS": 8,
                 "SOFTMAX_EXP": "taylor_fp16", "SOFTMAX_LANES": 256}
PRESETS: dict[str, dict[str, dict]] = {
    "paper": {
        "fusioncim": _PAPER_COMMON | {"N_IP_MACROS": 16, "N_OP_MACROS": 32},
        "ipcim_baseline": _PAPER_COMMON | {"N_IP_MACROS": 48},
    },
}


def preset_overrides(name: str | None, arch: str) -> dict:
    """The arch-spec variables preset ``name`` sets on arch spec ``arch`` (a stem in
    arch_specs/; other specs get the variables common to both)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return dict(p.get(str(arch), _PAPER_COMMON if name == "paper" else {}))
