#!/usr/bin/env bash
# Set up this project on a fresh machine: a virtual environment with a CPU build of torch (never a CUDA
# build on a machine without a GPU), the package in editable mode with its training and test extras.
#
#   bash scripts/setup.sh            # creates .venv
#   VENV=/opt/mod bash scripts/setup.sh
#
# Where no local CPU wheel of torch is configured for pip, point TORCH_INDEX_URL at PyTorch's CPU
# wheel index and pip will take the CPU build from there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
PIP_QUIET=${PIP_QUIET:--q}

step() { printf '\n==> %s\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { step "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install $PIP_QUIET --upgrade pip

has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

if "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  step "torch $TORCH_VERSION already installed"
elif has_gpu; then
  step "GPU found: installing torch $TORCH_VERSION (pip chooses the CUDA build)"
  pip install $PIP_QUIET "torch==$TORCH_VERSION"
else
  step "no GPU: installing the CPU build of torch $TORCH_VERSION"
  pip install $PIP_QUIET ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION+cpu"
fi

# Refuse to go on with a CUDA build on a CPU-only machine: it is gigabytes for nothing.
if ! has_gpu; then
  "$VENV/bin/python" - <<'PY' || { echo "setup: torch is missing or is a CUDA build on a machine without a GPU; set TORCH_INDEX_URL to a CPU wheel index" >&2; exit 1; }
import sys, torch
sys.exit(0 if torch.version.cuda is None else 1)
PY
fi

# Pin the torch we just installed so no later requirement swaps it for another build.
"$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$VENV/torch-constraint.txt"
step "installing the project (inference + training + Label Studio + tests)"
pip install $PIP_QUIET -c "$VENV/torch-constraint.txt" -e ".[train,review,serve,parquet,ray,dev]"
"$VENV/bin/python" -c "import moderation, cli, torch, onnxruntime, transformers, peft, label_studio_sdk" \
  && [ -x "$VENV/bin/label-studio" ] \
  || { echo "setup: the install is incomplete" >&2; exit 1; }
step "ready: $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'), moderate at $VENV/bin/moderate"
