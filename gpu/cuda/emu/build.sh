#!/usr/bin/env bash
# Builds libemu.a: the CPU emulator of CUDA (emu_*.cpp) and every kernel of
# kernels/*.cu compiled as C++ against emu.h, with a registry that finds a
# kernel by its name. The names come from nvcc's PTX entries (template
# instantiations included), so nvcc is needed, the compiler is the host's
# g++. The kernels of testkernels/*.cu (misuse the emulator must catch) are
# built in too: they are for the emulator's own tests, never in the fatbin.
#
#   build.sh NVCC KERNEL_DIR OUT_DIR
set -euo pipefail
nvcc=$1 kdir=$2 out=$3 # nvcc may carry flags (-ccbin g++): split on purpose
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
shopt -s nullglob
srcs=("$kdir"/*.cu "$here"/testkernels/*.cu)
: > "$out/names.txt"
for f in "${srcs[@]}"; do
	ptx="$out/$(basename "${f%.cu}").ptx"
	$nvcc -std=c++17 -ptx -arch=sm_80 -I"$kdir/.." -I"$kdir" "$f" -o "$ptx"
	grep -oE '\.entry [A-Za-z0-9_]+' "$ptx" | awk '{print $2}' >> "$out/names.txt"
done
{
	echo '#include "emu.h"'
	echo '#include "emu_reg.h"'
	for f in "${srcs[@]}"; do echo "#include \"$f\""; done
	echo 'EmuKernel emu_kernels[] = {'
	while read -r n; do echo "  emu_make(\"$n\", &$n),"; done < "$out/names.txt"
	echo '};'
	echo "int emu_nkernels = $(wc -l < "$out/names.txt");"
} > "$out/reg.cpp"
# No fast math and no FMA contraction: the emulated kernels round as the
# source says, so a parity failure is the kernel's, not the compiler's.
flags="-O1 -std=c++17 -U_FORTIFY_SOURCE -fno-fast-math -ffp-contract=off -I$here -I$kdir -I$kdir/.."
objs=""
for c in "$here"/emu_*.cpp; do
	o="$out/$(basename "${c%.cpp}").o"
	g++ $flags -Wall -c "$c" -o "$o"
	objs="$objs $o"
done
g++ $flags -w -c "$out/reg.cpp" -o "$out/reg.o"
rm -f "$out/libemu.a"
ar rcs "$out/libemu.a" $objs "$out/reg.o"
echo "emulator: libemu.a with $(wc -l < "$out/names.txt") kernels in $out"
