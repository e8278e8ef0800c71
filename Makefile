# Two commands on a fresh machine: `make run` (main job) and `make test` (test suite).
# Both create .venv first if it is missing (scripts/setup.sh).
.PHONY: setup run test bench bench-map clean

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/fusioncim compare --model llama3-8b --phase prefill --seq-len 4096

test: setup
	.venv/bin/python -m pytest -q tests

# Benchmarks, not tests: each prints its ratio against a reference measured in the same run.
bench: setup
	.venv/bin/python benchmarks/bench_evaluate.py
	.venv/bin/python benchmarks/bench_cli.py
	.venv/bin/python benchmarks/bench_evaluate_vs_L.py
	.venv/bin/python benchmarks/bench_rescale_profile.py

# The mapper benchmarks take minutes.
bench-map: setup
	.venv/bin/python benchmarks/bench_map_vs_stock.py
	.venv/bin/python benchmarks/bench_mapper.py --quick

clean:
	rm -rf .venv results
