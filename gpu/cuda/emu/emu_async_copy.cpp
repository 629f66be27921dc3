// cp.async, cp.async.commit_group and cp.async.wait_group of each thread
// (PTX ISA 9.0, 9.7.9.25.3 "cp.async", "cp.async.commit_group",
// "cp.async.wait_group / cp.async.wait_all").
//
// The schedule the emulator picks is the latest one the ISA allows: a copy
// happens when its thread waits for its group, not before. Until then its
// destination holds 0xFF bytes (a NaN in fp32 and in bf16), written at
// issue. Hardware never shows those bytes, but a kernel that reads them has
// a race (it reads before its wait, or before the barrier after another
// thread's wait, or writes the buffer a copy is still filling), so its
// parity test fails with NaNs instead of passing by luck on stale data.
// A thread that exits with copies it did not wait for is an error too.
#include "emu.h"
#include "emu_internal.h"
#include <vector>

namespace {

struct AsyncCopy {
    unsigned char* dst;
    const unsigned char* src;
    int bytes, src_bytes;
    long group;  // 0: not committed yet
};

struct ThreadCopies {
    std::vector<AsyncCopy> pending;  // in issue order
    long committed = 0;              // groups committed so far
};

std::vector<ThreadCopies> copies;  // by thread index in the block

}  // namespace

void emu_async_reset(int nthreads) {
    copies.resize(nthreads);
    for (auto& t : copies) {
        t.pending.clear();
        t.committed = 0;
    }
}

int emu_async_pending(int i) { return (int)copies[i].pending.size(); }

void emu_cp_async(void* dst, const void* src, int bytes, int src_bytes) {
    char msg[160];
    if (bytes != 4 && bytes != 8 && bytes != 16) {
        snprintf(msg, sizeof msg, "cp.async of %d bytes (4, 8 or 16)", bytes);
        emu_fault(msg);
    }
    if (src_bytes < 0 || src_bytes > bytes) {
        snprintf(msg, sizeof msg, "cp.async of %d bytes with src-size %d", bytes, src_bytes);
        emu_fault(msg);
    }
    // "Addresses as Operands": the addresses of an access of n bytes are
    // multiples of n.
    if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 || reinterpret_cast<uintptr_t>(src) % bytes != 0) {
        snprintf(msg, sizeof msg, "cp.async of %d bytes from %p to %p: not %d-byte aligned", bytes, src, dst, bytes);
        emu_fault(msg);
    }
    std::memset(dst, 0xFF, bytes);
    copies[emu_thread_index()].pending.push_back(
        AsyncCopy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes, src_bytes, 0});
}

void emu_cp_async_commit() {
    ThreadCopies& t = copies[emu_thread_index()];
    t.committed++;  // an empty group counts: wait_group counts groups
    for (auto& c : t.pending)
        if (c.group == 0) c.group = t.committed;
}

// Completes every committed group but the n most recent; copies not yet
// committed stay pending (wait_all is commit then wait 0).
void emu_cp_async_wait(int n) {
    ThreadCopies& t = copies[emu_thread_index()];
    size_t kept = 0;
    for (size_t i = 0; i < t.pending.size(); i++) {
        const AsyncCopy c = t.pending[i];
        if (c.group != 0 && c.group <= t.committed - n) {
            std::memcpy(c.dst, c.src, c.src_bytes);
            std::memset(c.dst + c.src_bytes, 0, c.bytes - c.src_bytes);
        } else {
            t.pending[kept++] = c;
        }
    }
    t.pending.resize(kept);
}
