#!/usr/bin/env bash
# Builds libemu.a: the CPU emulator of CUDA (emu_runtime.cpp) and every
# kernel of kernels/*.cu compiled as C++ against emu.h, with a registry
# that finds a kernel by its name. The names come from nvcc's PTX entries
# (template instantiations included), so nvcc is needed, the compiler is
# the host's g++.
#
#   build.sh NVCC KERNEL_DIR OUT_DIR
set -euo pipefail
nvcc=$1 kdir=$2 out=$3 # nvcc may carry flags (-ccbin g++): split on purpose
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
files=$(cd "$kdir" && ls *.cu)
: > "$out/names.txt"
for f in $files; do
	$nvcc -std=c++17 -ptx -arch=sm_80 -I"$kdir/.." "$kdir/$f" -o "$out/${f%.cu}.ptx"
	grep -oE '\.entry [A-Za-z0-9_]+' "$out/${f%.cu}.ptx" | awk '{print $2}' >> "$out/names.txt"
done
{
	echo '#include "emu.h"'
	echo '#include "emu_reg.h"'
	for f in $files; do echo "#include \"$kdir/$f\""; done
	echo 'EmuKernel emu_kernels[] = {'
	while read -r n; do echo "  emu_make(\"$n\", &$n),"; done < "$out/names.txt"
	echo '};'
	echo "int emu_nkernels = $(wc -l < "$out/names.txt");"
} > "$out/reg.cpp"
# No fast math and no FMA contraction: the emulated kernels round as the
# source says, so a parity failure is the kernel's, not the compiler's.
flags="-O1 -std=c++17 -U_FORTIFY_SOURCE -fno-fast-math -ffp-contract=off -I$here -I$kdir -I$kdir/.."
g++ $flags -c "$here/emu_runtime.cpp" -o "$out/emu_runtime.o"
g++ $flags -w -c "$out/reg.cpp" -o "$out/reg.o"
rm -f "$out/libemu.a"
ar rcs "$out/libemu.a" "$out/emu_runtime.o" "$out/reg.o"
echo "emulator: libemu.a with $(wc -l < "$out/names.txt") kernels in $out"
