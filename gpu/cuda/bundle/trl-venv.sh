#!/bin/sh
# Makes the Python environment of the TRL baseline (bench/trl) on a machine
# without network access:
#
#   trl-venv.sh PYTHON WHEELS_DIR VENV_DIR
#
# PYTHON is the machine's interpreter that has torch, transformers and
# accelerate (python3 on the GPU machines). VENV_DIR becomes a virtual
# environment that sees PYTHON's packages and gets the wheels of WHEELS_DIR
# (TRL and what it needs beyond them: `make gpu-bundle` downloads them, see
# bench/trl/requirements.txt) installed offline, without dependency
# resolution. It then imports trl and prints the versions.
#
# A venv made with --system-site-packages sees its base interpreter's
# packages; when PYTHON is itself a virtual environment (the GPU machines'
# python3 is /opt/torch/.venv/bin/python3), its own site-packages are not
# among them, so a .pth file adds PYTHON's site-packages folders after the
# venv's own: the bundle's wheels take precedence, the rest comes from PYTHON.
set -eu
[ $# -eq 3 ] || { echo "usage: trl-venv.sh PYTHON WHEELS_DIR VENV_DIR" >&2; exit 2; }
python=$1 wheels=$2 venv=$3
ls "$wheels"/*.whl >/dev/null 2>&1 || { echo "trl-venv.sh: no wheels in $wheels" >&2; exit 1; }
pip_flags="--quiet --disable-pip-version-check --no-index --no-deps --no-compile"
if "$python" -m venv --system-site-packages --without-pip "$venv"; then
	site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	"$python" - > "$site/_instructgo_parent_site.pth" <<'EOF'
import site, sys
for p in site.getsitepackages() + [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]:
    print(p)
EOF
	# pip comes from PYTHON's packages (the .pth) and installs into the venv.
	# shellcheck disable=SC2086
	"$venv/bin/python" -m pip install $pip_flags "$wheels"/*.whl
else
	# No venv module: the wheels go into a folder that a wrapper, standing
	# where the venv's python would, puts first on PYTHONPATH.
	echo "trl-venv.sh: $python -m venv failed; installing into $venv/site behind a PYTHONPATH wrapper" >&2
	interp=$(command -v "$python")
	mkdir -p "$venv/bin"
	# shellcheck disable=SC2086
	"$python" -m pip install $pip_flags --target "$venv/site" "$wheels"/*.whl
	printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec "%s" "$@"\n' "$venv/site" "$interp" > "$venv/bin/python"
	chmod +x "$venv/bin/python"
fi
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import trl.experimental.ppo  # noqa: F401  (fails here, not in the timed run)
print("trl-venv:", ", ".join(f"{p} {md.version(p)}" for p in ("trl", "datasets", "transformers", "accelerate", "torch")))
EOF
