#!/usr/bin/env bash
# Source on a lent GPU machine (no network): install the carried wheels (.whl/) and zse itself, without deps.
# The machine's image already has CUDA torch, numpy, scipy, scikit-image, tifffile, matplotlib, click, tqdm, pyyaml, psutil.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${WHL_DIR:-.whl}"/*.whl
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-deps --no-build-isolation --no-index . >/dev/null 2>&1 || python3 -m pip install --no-deps --no-build-isolation --no-index .
export PATH="$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))'):$PATH"
python3 -c "import torch, zse; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"
