#!/usr/bin/env bash
# Creates the Python environment for the PyTorch CPU baseline
# (bench/pytorch/train_step.py): a venv at <repo>/.venv (git-ignored) holding
# exactly the packages pinned in bench/pytorch/requirements.txt, installed
# from PyPI with --no-deps. Idempotent: when the venv already holds every
# pinned version and `import torch` works, it does nothing.
#
# Usage: bash bench/pytorch/setup.sh        (VENV=/other/path to relocate)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/.venv}"
req="$here/requirements.txt"
py="$venv/bin/python"

# Exits 0 when every pin in requirements.txt is installed at its version and
# torch imports; prints what is missing otherwise.
check() {
	"$py" - "$req" <<'EOF'
import re, sys
from importlib import metadata

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

bad = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        have = metadata.version(norm(name))
    except metadata.PackageNotFoundError:
        have = None
    if have is None or have.split("+")[0] != want:
        bad.append(f"{name}: want {want}, have {have}")
if bad:
    print("venv differs from requirements.txt:\n  " + "\n  ".join(bad))
    sys.exit(1)
import warnings
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch
print(f"torch {torch.__version__}: threads={torch.get_num_threads()} "
      f"mkldnn={torch.backends.mkldnn.is_available()} mkl={torch.backends.mkl.is_available()} "
      f"cuda={torch.cuda.is_available()}")
EOF
}

if [[ -x "$py" ]] && check; then
	echo "setup.sh: $venv already has the pinned packages; nothing to do."
	echo "setup.sh: venv size $(du -sh "$venv" | cut -f1)"
	exit 0
fi

if [[ ! -x "$py" ]]; then
	echo "setup.sh: creating venv $venv with $(python3 --version)"
	python3 -m venv "$venv"
else
	echo "setup.sh: reusing venv $venv"
fi

echo "setup.sh: installing the pinned packages from $req (pip --no-deps; about 2.3 GB to download)"
"$venv/bin/pip" install --disable-pip-version-check --no-deps --progress-bar off -r "$req"

echo "setup.sh: checking the install"
check
echo "setup.sh: done; venv size $(du -sh "$venv" | cut -f1)"
