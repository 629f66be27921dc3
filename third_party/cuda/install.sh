#!/usr/bin/env bash
# Installs the pinned CUDA build tools that `make kernels` and `make
# cuda-check` need on a machine without a CUDA toolkit (CI, laptops) into
# third_party/cuda/.install (git-ignored). Nothing here runs a GPU: it is
# what compiles the kernels and the cuda-tagged Go code. See README.md beside
# this script for what is pinned, why, and the licences.
#
#   third_party/cuda/install.sh [all|cuda12|cuda13]
#
# It lays out
#   .install/cuda12   a CUDA_HOME-like CUDA 12.4 tree: bin/nvcc (+ the tools
#                     nvcc drives), nvvm/, include/ (runtime, driver, crt and
#                     CCCL headers)
#   .install/cuda13   include/ with the CUDA 13.x driver and runtime headers
#                     (for compiling gorgonia.org/cu against 13.x)
# Each tree records its pins in a file named PINS; a re-run whose pins match
# does nothing and needs no network. Downloads are checked against pinned
# SHA-256 sums and kept in .install/downloads.
#
# Environment: CUDA_INSTALL_DIR overrides the destination; PYTHON the Python
# whose pip downloads the wheels (default python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${CUDA_INSTALL_DIR:-$here/.install}
python=${PYTHON:-python3}
what=${1:-all}

# --- pins -------------------------------------------------------------------
# NVIDIA's CUDA 12 wheels ship ptxas and the headers but not nvcc's driver
# or cicc (nvidia-cuda-nvcc-cu12 has had only ptxas and libnvvm through
# 12.9); Debian's non-free archive (trixie) has NVIDIA's CUDA 12.4.1 compiler
# binaries. The wheels are pinned to the same 12.4.1 release.
DEB_SUITE=trixie
DEB_PKG=nvidia-cuda-toolkit
DEB_VERSION=12.4.131~12.4.1-2
DEB_SHA256=cd5fe85aee38d108b315f408a688641478f2402622a10c677478eb7a6c4e5319

WHEELS12=(
	"nvidia-cuda-nvcc-cu12==12.4.131 e4c9a35435c3b0e36c6397c5696334c9ea6650e524736cbd1c5d345ea099bb04"
	"nvidia-cuda-runtime-cu12==12.4.127 64403288fa2136ee8e467cdc9c9427e0434110899d07c779f25b5c068934faa5"
	"nvidia-cuda-cccl-cu12==12.4.127.post1 2027fa5fc75fbee703bf24e8275a40a605cf94a3e8fef8a7187897d49b34facb"
)
WHEELS13=(
	"nvidia-cuda-runtime==13.5.37 df2b79a8852f10d1fef8c848489c49eebb5754051bf870202a862831412b179d"
)

# --- helpers ----------------------------------------------------------------
say() { printf 'third_party/cuda: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	say "a machine with a CUDA 12 toolkit can set CUDA_HOME instead (see third_party/cuda/README.md)"
	exit 1
}

downloads=$dest/downloads
mkdir -p "$downloads"

pins_of() { # the PINS text of a tree
	case $1 in
	cuda12)
		printf 'deb %s %s=%s %s\n' "$DEB_SUITE" "$DEB_PKG" "$DEB_VERSION" "$DEB_SHA256"
		printf 'wheel %s\n' "${WHEELS12[@]}"
		;;
	cuda13) printf 'wheel %s\n' "${WHEELS13[@]}" ;;
	esac
}

up_to_date() { # tree: installed with these pins?
	[[ -f $dest/$1/PINS ]] && [[ "$(cat "$dest/$1/PINS")" == "$(pins_of "$1")" ]]
}

# fetch_wheels DIR SPEC... downloads each "name==version sha256" wheel into
# DIR (skipping those already there with the right hash) and prints the
# wheel paths.
fetch_wheels() {
	local out=$1
	shift
	local reqs=$out/requirements.txt spec name ver sum
	: >"$reqs"
	for spec in "$@"; do
		read -r name sum <<<"$spec"
		printf '%s --hash=sha256:%s\n' "$name" "$sum" >>"$reqs"
	done
	if ! have_wheels "$out" "$@"; then
		"$python" -m pip --version >/dev/null 2>&1 || die "$python -m pip is not available (set PYTHON to a Python with pip)"
		say "pip download: $(tr '\n' ' ' <"$reqs" | sed 's/ --hash=sha256:[0-9a-f]*//g')"
		"$python" -m pip download --quiet --disable-pip-version-check --no-deps \
			--only-binary=:all: --require-hashes -r "$reqs" -d "$out" >&2 ||
			die "pip download of the CUDA wheels failed"
	fi
	for spec in "$@"; do
		read -r name sum <<<"$spec"
		ver=${name#*==}
		name=${name%%==*}
		local f
		f=$(ls "$out"/"${name//-/_}"-"$ver"-*.whl 2>/dev/null | head -n1)
		[[ -n $f ]] || die "wheel $name $ver missing after download"
		echo "$sum  $f" | sha256sum --quiet -c - || die "checksum mismatch: $f"
		echo "$f"
	done
}

# have_wheels DIR SPEC...: every pinned wheel is already in DIR with its hash
# (then no network is needed).
have_wheels() {
	local out=$1 spec name sum f
	shift
	for spec in "$@"; do
		read -r name sum <<<"$spec"
		f=$(ls "$out"/"$(printf '%s' "${name%%==*}" | tr - _)"-"${name#*==}"-*.whl 2>/dev/null | head -n1)
		[[ -n $f ]] && echo "$sum  $f" | sha256sum --quiet -c - 2>/dev/null || return 1
	done
}

unpack_wheel() { # wheel dir
	"$python" -m zipfile -e "$1" "$2"
}

unpack_deb() { # deb dir
	if command -v dpkg-deb >/dev/null; then
		dpkg-deb -x "$1" "$2"
	else
		local t
		t=$(mktemp -d)
		(cd "$t" && ar x "$1" && tar -xf data.tar.* -C "$2")
		rm -rf "$t"
	fi
}

fetch_deb() { # prints the path of the verified .deb
	local file=$downloads/${DEB_PKG}_${DEB_VERSION//:/%3a}_amd64.deb
	if [[ -f $file ]] && echo "$DEB_SHA256  $file" | sha256sum --quiet -c - 2>/dev/null; then
		echo "$file"
		return
	fi
	command -v apt-get >/dev/null || die "apt-get is needed to fetch $DEB_PKG from Debian's archive"
	# A private apt state: the machine's sources and lists are not touched.
	local apt=$dest/apt
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$apt/preferences.d"
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[[ -f $keyring ]] || die "$keyring is missing (apt-get install debian-archive-keyring)"
	echo "deb [signed-by=$keyring] http://deb.debian.org/debian $DEB_SUITE non-free" >"$apt/sources.list"
	local opts=(
		-o "Dir::Etc::SourceList=$apt/sources.list"
		-o "Dir::Etc::SourceParts=$apt/sources.list.d"
		-o "Dir::Etc::PreferencesParts=$apt/preferences.d"
		-o "Dir::State::Lists=$apt/lists"
		-o "Dir::Cache=$apt/cache"
		-o "APT::Sandbox::User=$(id -un)"
		-o "Debug::NoLocking=1"
		-o "Acquire::Languages=none"
		-o "APT::Architecture=amd64"
	)
	say "apt-get update ($DEB_SUITE non-free, private state in $apt)"
	apt-get "${opts[@]}" -qq update >&2 || die "apt-get update of Debian $DEB_SUITE non-free failed"
	say "apt-get download $DEB_PKG=$DEB_VERSION"
	(cd "$downloads" && apt-get "${opts[@]}" -qq download "$DEB_PKG=$DEB_VERSION" >&2) ||
		die "apt-get download $DEB_PKG=$DEB_VERSION failed (has Debian $DEB_SUITE moved on? update the pin)"
	echo "$DEB_SHA256  $file" | sha256sum --quiet -c - || die "checksum mismatch: $file"
	echo "$file"
}

# --- CUDA 12: a toolkit tree that compiles kernels/*.cu ---------------------
install_cuda12() {
	if up_to_date cuda12; then
		say "cuda12 up to date ($dest/cuda12)"
		return
	fi
	local t0=$SECONDS deb wheels tmp tree=$dest/cuda12
	deb=$(fetch_deb)
	mapfile -t wheels < <(fetch_wheels "$downloads" "${WHEELS12[@]}")
	tmp=$(mktemp -d "$dest/tmp.XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	unpack_deb "$deb" "$tmp/deb"
	local w
	for w in "${wheels[@]}"; do unpack_wheel "$w" "$tmp/whl"; done

	rm -rf "$tree"
	mkdir -p "$tree/bin" "$tree/nvvm/bin" "$tree/nvvm/libdevice" "$tree/include" "$tree/licenses"
	local tk=$tmp/deb/usr/lib/nvidia-cuda-toolkit
	cp "$tk/bin/nvcc" "$tree/bin/"
	cp "$tk/bin/cicc" "$tree/nvvm/bin/"
	cp -r "$tk/bin/crt" "$tree/bin/crt"
	cp "$tmp/deb/usr/bin/cudafe++" "$tmp/deb/usr/bin/fatbinary" "$tmp/deb/usr/bin/nvlink" \
		"$tmp/deb/usr/bin/bin2c" "$tmp/deb/usr/bin/cuobjdump" "$tree/bin/"
	local nv=$tmp/whl/nvidia
	cp "$nv/cuda_nvcc/bin/ptxas" "$tree/bin/"
	cp "$nv/cuda_nvcc/nvvm/libdevice/libdevice.10.bc" "$tree/nvvm/libdevice/"
	cp -r "$nv/cuda_runtime/include/." "$nv/cuda_nvcc/include/." "$nv/cuda_cccl/include/." "$tree/include/"
	find "$tree/include" -name '__init__.py' -delete
	cp "$tmp/deb/usr/share/doc/$DEB_PKG/copyright" "$tree/licenses/debian-copyright" 2>/dev/null || true
	cp "$tmp"/whl/nvidia_cuda_runtime_cu12-*.dist-info/License.txt "$tree/licenses/NVIDIA-EULA.txt" 2>/dev/null || true
	chmod +x "$tree/bin/"* "$tree/nvvm/bin/cicc"
	# nvcc reads nvcc.profile from its own directory; this one points it at
	# the tree, wherever the tree is.
	cat >"$tree/bin/nvcc.profile" <<'EOF'
TOP              = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
PATH            += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES        +=  "-I$(TOP)/include" $(_SPACE_)
LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/lib64"
CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
EOF
	"$tree/bin/nvcc" --version >/dev/null || die "the installed nvcc does not run"
	pins_of cuda12 >"$tree/PINS"
	say "cuda12 installed in $((SECONDS - t0)) s: $("$tree/bin/nvcc" --version | tail -n1)"
}

# --- CUDA 13: headers only, for the compat check of gorgonia.org/cu --------
install_cuda13() {
	if up_to_date cuda13; then
		say "cuda13 up to date ($dest/cuda13)"
		return
	fi
	local t0=$SECONDS wheels tmp tree=$dest/cuda13
	mapfile -t wheels < <(fetch_wheels "$downloads" "${WHEELS13[@]}")
	tmp=$(mktemp -d "$dest/tmp.XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	unpack_wheel "${wheels[0]}" "$tmp/whl"
	rm -rf "$tree"
	mkdir -p "$tree/licenses"
	cp -r "$tmp/whl/nvidia/cu13/include" "$tree/include"
	find "$tree/include" -name '__init__.py' -delete
	cp "$tmp"/whl/nvidia_cuda_runtime-*.dist-info/licenses/License.txt "$tree/licenses/NVIDIA-EULA.txt" 2>/dev/null || true
	[[ -f $tree/include/cuda.h ]] || die "no cuda.h in the CUDA 13 runtime wheel"
	pins_of cuda13 >"$tree/PINS"
	say "cuda13 headers installed in $((SECONDS - t0)) s: $(grep -m1 '^#define CUDA_VERSION' "$tree/include/cuda.h")"
}

case $what in
all) install_cuda12 && install_cuda13 ;;
cuda12) install_cuda12 ;;
cuda13) install_cuda13 ;;
*) die "unknown target $what (want all, cuda12 or cuda13)" ;;
esac
