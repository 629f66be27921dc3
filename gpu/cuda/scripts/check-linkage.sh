#!/usr/bin/env bash
# Checks cuda-built binaries: each must need libcuda.so.1 (the driver, found
# at run time) and must carry no RPATH/RUNPATH (the link-time stub must never
# be found at run time). Prints the newest glibc symbol version each needs,
# the oldest glibc the GPU machine may have.
#
#   check-linkage.sh BINARY...
set -euo pipefail
command -v readelf >/dev/null || { echo "check-linkage: readelf not found, skipped" >&2; exit 0; }
status=0
for bin in "$@"; do
	dyn=$(readelf -d "$bin")
	if ! grep -q 'Shared library: \[libcuda.so.1\]' <<<"$dyn"; then
		echo "check-linkage: $bin does not need libcuda.so.1" >&2
		status=1
	fi
	if grep -qE '\((RPATH|RUNPATH)\)' <<<"$dyn"; then
		echo "check-linkage: $bin has a run-time library path: $(grep -E 'RPATH|RUNPATH' <<<"$dyn")" >&2
		status=1
	fi
	glibc=$(readelf -V "$bin" | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' | sort -t. -k2,2n -k3,3n -u | tail -n1)
	echo "check-linkage: $(basename "$bin"): needs libcuda.so.1, no rpath, glibc >= ${glibc#GLIBC_}"
done
exit $status
