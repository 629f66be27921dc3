#!/usr/bin/env bash
# Reads the nvcc/ptxas report of `make kernels` (-Xptxas -v), writes a
# table of every kernel per architecture (registers, shared memory, stack,
# spills) to ptxas-summary.txt beside it, and fails when a kernel whose name
# matches the critical pattern spills: fused attention, the fused
# log-softmax, the cross-entropy and the fallback GEMM must keep everything
# in registers.
#
#   check-spills.sh build/cuda/ptxas.txt [PATTERN]
#
# PATTERN is an extended regular expression matched case-insensitively
# against kernel names (default: attention|attn|flash|log_?softmax|cross_?entropy|gemm).
set -euo pipefail
report=${1:?usage: check-spills.sh PTXAS_REPORT [PATTERN]}
pattern=${2:-attention|attn|flash|log_?softmax|cross_?entropy|gemm}
summary=$(dirname "$report")/ptxas-summary.txt

awk -v pat="$pattern" -v summary="$summary" '
function flush() {
	if (fn == "") return
	key = farch " " fn
	if (!(key in seen)) { seen[key] = 1; order[n++] = key }
	regs[key] = r; smem[key] = s; stack[key] = st; sstore[key] = ss; sload[key] = sl
	fn = ""
}
/Compiling entry function/ {
	if (match($0, /for .sm_[0-9]+[a-z]?./)) arch = substr($0, RSTART + 5, RLENGTH - 6)
}
/Function properties for / {
	flush()
	fn = $NF; gsub(/[\047:]/, "", fn); farch = arch; r = 0; s = 0; st = 0; ss = 0; sl = 0
}
/bytes stack frame/ {
	if (match($0, /[0-9]+ bytes stack frame/)) st = substr($0, RSTART, RLENGTH) + 0
	if (match($0, /[0-9]+ bytes spill stores/)) ss = substr($0, RSTART, RLENGTH) + 0
	if (match($0, /[0-9]+ bytes spill loads/)) sl = substr($0, RSTART, RLENGTH) + 0
}
/Used [0-9]+ registers/ {
	if (match($0, /Used [0-9]+ registers/)) r = substr($0, RSTART + 5, RLENGTH - 15) + 0
	if (match($0, /[0-9]+ bytes smem/)) s = substr($0, RSTART, RLENGTH) + 0
}
END {
	flush()
	printf "%-8s %-44s %5s %7s %6s %7s %7s\n", "arch", "function", "regs", "smem", "stack", "spill_st", "spill_ld" > summary
	bad = 0; warn = 0; nk = 0
	for (i = 0; i < n; i++) {
		key = order[i]; split(key, kv, " ")
		printf "%-8s %-44s %5d %7d %6d %7d %7d\n", kv[1], kv[2], regs[key], smem[key], stack[key], sstore[key], sload[key] > summary
		nk++
		if (sstore[key] > 0 || sload[key] > 0) {
			if (tolower(kv[2]) ~ pat) {
				printf "check-spills: FAIL %s on %s spills (%d bytes stored, %d loaded)\n", kv[2], kv[1], sstore[key], sload[key]
				bad++
			} else {
				printf "check-spills: note: %s on %s spills (%d bytes stored, %d loaded)\n", kv[2], kv[1], sstore[key], sload[key]
			}
		}
		if (tolower(kv[2]) ~ pat) crit[kv[2]] = 1
	}
	nc = 0; names = ""
	for (f in crit) { nc++; names = names " " f }
	printf "check-spills: %d kernel/arch entries; %d critical kernels (/%s/):%s\n", nk, nc, pat, names
	ng = split("attention|attn|flash log_?softmax gemm", groups, " ")
	for (g = 1; g <= ng; g++) {
		found = 0
		for (f in crit) if (tolower(f) ~ groups[g]) found = 1
		if (!found) printf "check-spills: note: no kernel matching /%s/ in the report yet\n", groups[g]
	}
	if (nk == 0) { print "check-spills: no functions found in the report"; exit 1 }
	exit bad > 0
}' "$report"
