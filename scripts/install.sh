#!/usr/bin/env bash
# Install pix2pix-hub (editable) with the given extras, e.g. `bash scripts/install.sh dev`.
# On a machine without an NVIDIA GPU, torch is installed first as the CPU build, so pip never pulls the
# multi-GB CUDA build; on a GPU machine (or with torch already installed) the normal torch stays.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-train}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install: NVIDIA GPU found, installing the default (CUDA) torch build"
    "$PYTHON" -m pip install "torch==$TORCH_VERSION"
  else
    echo "install: no GPU found, installing the CPU build of torch $TORCH_VERSION"
    # The CPU index is tried with few retries; a locally configured wheel (pip find-links) also satisfies it.
    "$PYTHON" -m pip install --retries 1 --timeout 15 "torch==$TORCH_VERSION" --extra-index-url "$TORCH_CPU_INDEX" \
      || "$PYTHON" -m pip install "torch==$TORCH_VERSION"
  fi
fi
"$PYTHON" -m pip install -q -e ".[$EXTRAS]"

if [[ "$EXTRAS" == *dev* ]] && ! command -v chromium >/dev/null 2>&1; then
  # The browser test drives Debian's chromium through Playwright (no browser download needed).
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "install: chromium not found; the browser test will be skipped (apt-get install chromium chromium-driver)"
  fi
fi
"$PYTHON" -c "import sys, torch, pix2pix_hub
print(f'install: pix2pix_hub {pix2pix_hub.__version__}, torch {torch.__version__}, in {sys.prefix}')"
