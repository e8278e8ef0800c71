# Two commands on a fresh machine: `make run` (main job) and `make test` (test suite).
# Both create .venv first if it is missing (scripts/setup.sh).
.PHONY: setup run test bench clean

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/fusioncim compare --model llama3-8b --phase prefill --seq-len 4096

test: setup
	.venv/bin/python -m pytest -q tests

bench: setup
	.venv/bin/python benchmarks/bench_evaluate.py

clean:
	rm -rf .venv results
