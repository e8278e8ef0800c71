"""Wall time of one `evaluate` (issue 2 target: < 1 s per evaluation once the spec is
loaded). Not a test: run it with `make bench` and quote its output."""

import time

from fusioncim_plugin.arch import load_arch
from fusioncim_plugin.evaluation import evaluate
from fusioncim_plugin.workload import Workload


def timed(fn, n=20):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main():
    t = time.perf_counter()
    load_arch("fusioncim")
    print(f"spec load + hwcomponents costing (first time): {time.perf_counter() - t:.2f} s")
    for L in (4096, 32768):
        wl = Workload(model="llama3-8b", phase="prefill", seq_len=L)
        t = time.perf_counter()
        evaluate("fusioncim", wl)  # first call also builds the softmax rescale profile
        first = time.perf_counter() - t
        warm = timed(lambda: evaluate("fusioncim", wl))
        print(f"evaluate fusioncim llama3-8b prefill seq_len={L}: first {first * 1e3:.1f} ms, "
              f"then {warm * 1e3:.2f} ms per evaluation")


if __name__ == "__main__":
    main()
