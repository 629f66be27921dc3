// What the emulator's own files share (emu_runtime.cpp, emu_tensorcore.cpp,
// emu_async_copy.cpp); kernels never see it.
#pragma once
#include <string>

// Warp collectives on fragments, after the shuffles of emu.h.
enum { EMU_MMA_BF16 = 16, EMU_LDMATRIX };

// emu_warp_collective suspends the calling thread until every lane of its
// warp has called it with the same kind and arg, then the scheduler runs
// emu_run_collective over the 32 lanes' in and out pointers.
void emu_warp_collective(int kind, int arg, const void* in, void* out);

// emu_run_collective does the work of a collective (emu_tensorcore.cpp);
// it returns an error message or "".
std::string emu_run_collective(int kind, int arg, const void* const in[32], void* const out[32]);

// emu_fault records msg as the kernel's error and stops the calling thread
// for good (the launch fails).
[[noreturn]] void emu_fault(const std::string& msg);

// emu_thread_index is the calling thread's linear index in its block.
int emu_thread_index();

// cp.async bookkeeping (emu_async_copy.cpp): emu_async_reset forgets every
// thread's copies when a block starts; emu_async_pending says how many
// copies thread i has issued and not waited for.
void emu_async_reset(int nthreads);
int emu_async_pending(int i);
