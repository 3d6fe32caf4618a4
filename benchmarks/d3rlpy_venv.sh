#!/usr/bin/env bash
# Create (idempotently) the separate venv that runs benchmarks/offline_d3rlpy.py, the d3rlpy peer of the
# offline-RL benchmark:
#
#     bash benchmarks/d3rlpy_venv.sh                      # venv at .cache/d3rlpy-venv (repo-relative)
#     D3RLPY_VENV=/some/where bash benchmarks/d3rlpy_venv.sh
#     .cache/d3rlpy-venv/bin/python benchmarks/offline_d3rlpy.py --data ... --algo cql --out ...
#
# Why a venv of its own: d3rlpy 2.8.1 declares `gymnasium==1.0.0`, while the project pins gymnasium==1.4.0
# (constraints.txt) and fitness_weights_env needs gymnasium >= 1.1 (`from gymnasium.vector import AutoresetMode`;
# 1.0.0 has no AutoresetMode, so the env does not even import under d3rlpy's pin).
#
# How the conflict is resolved:
#   1. d3rlpy's requirements (torch>=2.5, tqdm, h5py, gym>=0.26, click, typing-extensions, structlog, colorama,
#      dataclasses-json, scikit-learn; gymnasium==1.0.0 left out) are installed WITH `-c constraints.txt`, so
#      torch==2.13.0 (the CPU wheel; an unpinned torch pulls GBs of CUDA packages), numpy, tqdm, scipy and
#      gymnasium==1.4.0 take the project's pins. torch==2.13.0 is also named explicitly, in case the constraints
#      file ever loses its pin.
#   2. d3rlpy==2.8.1 itself is installed with `--no-deps`, so pip does not downgrade gymnasium to 1.0.0.
#      `pip check` therefore reports "d3rlpy 2.8.1 has requirement gymnasium==1.0.0"; that is expected. d3rlpy only
#      uses gymnasium's spaces and wrappers (Box, Discrete, Dict, Tuple, TimeLimit, Wrapper), which 1.4.0 keeps,
#      and its import-time health check (gymnasium >= 1.0.0, torch >= 2.5.0) passes.
#   3. This repository is installed with `--no-deps -e .`: only fitness_weights_env is used there (numpy and
#      gymnasium), so stable-baselines3 and the API's packages are deliberately absent (`pip check` lists them
#      too). Never import sb3_ext from this venv.
# Re-running the script is cheap: the venv is kept, and pip skips what is already satisfied.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${D3RLPY_VENV:-.cache/d3rlpy-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
D3RLPY_VERSION="2.8.1"

if [[ ! -x "$VENV/bin/python" ]]; then
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# 1. d3rlpy's requirements, under the project's pins (gymnasium==1.4.0 instead of d3rlpy's 1.0.0).
"${PIP[@]}" install --quiet -c constraints.txt \
    "torch==$TORCH_VERSION" numpy gymnasium \
    "tqdm>=4.66.3" h5py "gym>=0.26.0" click typing-extensions structlog colorama dataclasses-json scikit-learn
# 2. d3rlpy without its gymnasium==1.0.0 pin.
"${PIP[@]}" install --quiet --no-deps "d3rlpy==$D3RLPY_VERSION"
# 3. This repository, for fitness_weights_env only.
"${PIP[@]}" install --quiet --no-deps -e .

"$VENV/bin/python" - <<'EOF'
import d3rlpy
import gymnasium
import numpy
import torch

import fitness_weights_env

print(
    f"d3rlpy {d3rlpy.__version__}, torch {torch.__version__}, gymnasium {gymnasium.__version__}, "
    f"numpy {numpy.__version__}, fitness_weights_env from {fitness_weights_env.__file__}"
)
EOF
