"""Wall time of the synthetic rescale model at 32K tokens (formerly wall-clock asserts in
tests/test_softmax.py: 0.2 s per built-in order at the table's block size, 1 s for an
off-table block size). Not a test: run it with `make bench` and quote its output."""

import os
import time

from fusioncim_plugin.softmax import rescale_profile

BUILTIN = ("natural", "sink_local", "adaptive", "diagonal_first", "oracle")


def main():
    rescale_profile.cache_clear()
    for order in BUILTIN:
        t = time.perf_counter()
        rescale_profile(order, 32768, 64, 64)
        ms = (time.perf_counter() - t) * 1e3
        print(f"rescale_profile({order!r}, 32768, 64, 64): {ms:.1f} ms (reference: 200 ms)")
    t = time.perf_counter()
    rescale_profile("adaptive", 32768, 48, 48)  # off-table block size: seeded sample
    print(f"rescale_profile('adaptive', 32768, 48, 48), sampled: "
          f"{(time.perf_counter() - t) * 1e3:.1f} ms (reference: 1000 ms)")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
