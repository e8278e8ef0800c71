#!/usr/bin/env bash
# Creates .venv (Python 3.12, pinned accelforge/hwcomponents, this package editable)
# and the system packages the AccelForge mapper needs. Idempotent: a second run only
# checks. Used by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Graphviz `dot`: AccelForge's mapper renders mappings with it.
if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing graphviz (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
  else
    echo "setup: warning: graphviz (dot) missing and not root; 'fusioncim map' will not render" >&2
  fi
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import fusioncim_plugin, accelforge' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  py=""
  for cand in python3.12 "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/"3.12*/bin/python3.12 | awk '{print $NF}')"; do
    if [ -n "$cand" ] && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      py="$cand"; break
    fi
  done
  if [ -z "$py" ]; then
    echo "setup: error: Python 3.12 not found (hwcomponents needs >= 3.12). Install it, or put python3.12 on PATH." >&2
    exit 1
  fi
  echo "setup: creating .venv with $("$py" --version)"
  "$py" -m venv .venv
  .venv/bin/pip install -q -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c 'import fusioncim_plugin, accelforge, hwcomponents_fusioncim'
  touch .venv/.installed
fi

# hwcomponents-neurosim 1.0.43 ships a NeuroSim binary linked against a newer libstdc++
# (GLIBCXX_3.4.32) than Debian 12 has; AccelForge's stock CIM examples (`fusioncim
# stock`) need it. Rebuild it from the sources shipped in the package (~25 s, g++).
NS=$(.venv/bin/python -c 'import hwcomponents_neurosim as m, os; print(os.path.dirname(m.__file__))')
probe=$("$NS/NeuroSim/main" 2>&1 || true)
if grep -q "not found" <<<"$probe"; then
  echo "setup: rebuilding NeuroSim for this machine's libstdc++"
  tmp=$(mktemp -d)
  cp -r "$NS"/DNN_NeuroSim_V1.3/Inference_pytorch/NeuroSIM/* "$tmp"/
  cp -r "$NS"/drop_in/* "$tmp"/
  make -C "$tmp" -j2 >"$tmp/make.log" 2>&1 || { tail -20 "$tmp/make.log" >&2; exit 1; }
  cp "$tmp/main" "$NS/NeuroSim/main"
  rm -rf "$tmp"
fi

# hwcomponents-cacti 1.0.40 ships a CACTI binary linked against a newer glibc/libstdc++
# than Debian 12 has; the global-buffer table (energy_tables/global_buffer.yaml, written
# by scripts/cacti_global_buffer.py) and its test query CACTI through it. Rebuild it from
# the sources shipped in the package (optimized build, ~2 min, g++).
CD=$(.venv/bin/python -c 'import hwcomponents_cacti as m, os; print(os.path.dirname(m.__file__))')/cacti
probe=$("$CD/cacti" 2>&1 || true)
if grep -q "not found" <<<"$probe"; then
  echo "setup: rebuilding CACTI for this machine's glibc"
  tmp=$(mktemp -d)
  cp -r "$CD"/* "$tmp"/
  rm -rf "$tmp"/obj_dbg "$tmp"/obj_opt "$tmp"/cacti
  make -C "$tmp" opt -j2 >"$tmp/make.log" 2>&1 || { tail -20 "$tmp/make.log" >&2; exit 1; }
  cp "$tmp/obj_opt/cacti" "$CD/cacti"
  rm -rf "$tmp"
fi
