#include "emu.h"
#include "emu_internal.h"
#include <setjmp.h>
#include <ucontext.h>
#include <vector>
#include <string>
#include <functional>
#include <stdexcept>

unsigned char* emu_dyn_smem = nullptr;
uint3 emu_blockIdx, emu_blockDim, emu_gridDim;

enum State { RUN, WAIT_BLOCK, WAIT_WARP, DONE };

// A thread of the emulated block is a fiber with a stack of its own. A
// fiber is made once (makecontext) and then lives on: at the end of a
// kernel it waits for the next block, whose kernel it runs from the top.
// Switches between the scheduler and a fiber are _setjmp/_longjmp, which
// (unlike swapcontext) make no system call.
struct EmuThread {
    uint3 tid;
    int lin;
    State st;
    bool started;  // its fiber exists and waits in to_sched
    ucontext_t ctx;
    jmp_buf jb;
    char* stack;
    // warp op
    int kind, arg;
    unsigned mask;
    unsigned long long val, res;
    const void* in;  // a collective's operands and results (emu_internal.h)
    void* out;
};

EmuThread* emu_cur = nullptr;
static jmp_buf sched_jb;
static std::vector<EmuThread> threads;
static std::function<void()> cur_kernel;
static std::string emu_err;
static const size_t STACK = 256 * 1024;
static char errbuf[4096];

const uint3& emu_tid() { return emu_cur->tid; }

static void fail(const std::string& s) {
    if (emu_err.empty()) emu_err = s;
}

// to_sched suspends the running fiber and returns to the scheduler; the
// fiber continues from here when the scheduler resumes it.
static void to_sched() {
    if (!_setjmp(emu_cur->jb)) _longjmp(sched_jb, 1);
}

void emu_syncthreads() {
    emu_cur->st = WAIT_BLOCK;
    to_sched();
}

unsigned long long emu_warp_op(int kind, unsigned long long v, int arg, unsigned mask) {
    emu_cur->st = WAIT_WARP;
    emu_cur->kind = kind;
    emu_cur->val = v;
    emu_cur->arg = arg;
    emu_cur->mask = mask;
    to_sched();
    return emu_cur->res;
}

void emu_warp_collective(int kind, int arg, const void* in, void* out) {
    emu_cur->in = in;
    emu_cur->out = out;
    emu_warp_op(kind, 0, arg, 0xffffffffu);
}

void emu_fault(const std::string& msg) {
    fail(msg);
    for (;;) {
        emu_cur->st = WAIT_BLOCK;  // never resumed: run_block returns at the error
        to_sched();
    }
}

int emu_thread_index() { return emu_cur->lin; }

static void fiber_main(int i) {
    for (;;) {
        cur_kernel();
        if (int n = emu_async_pending(i)) {
            snprintf(errbuf, sizeof errbuf, "thread %d exited with %d cp.async copies not waited for", i, n);
            fail(errbuf);
        }
        threads[i].st = DONE;
        to_sched();  // resumed when the next block starts
    }
}

// resume runs fiber i until it next suspends, making it on first use.
static void resume(int i) {
    EmuThread& t = threads[i];
    emu_cur = &t;
    if (_setjmp(sched_jb)) return;
    if (t.started) _longjmp(t.jb, 1);
    t.started = true;
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t.stack;
    t.ctx.uc_stack.ss_size = STACK;
    t.ctx.uc_link = nullptr;
    makecontext(&t.ctx, (void (*)())fiber_main, 1, i);
    setcontext(&t.ctx);
}

// abandon drops the fibers stopped inside a kernel that failed: they are
// made afresh on next use.
static void abandon(int nthreads) {
    for (int i = 0; i < nthreads; i++)
        if (threads[i].st != DONE) threads[i].started = false;
}

// Runs one block; returns false on an error (in emu_err).
static bool run_block(int nthreads) {
    for (int i = 0; i < nthreads; i++) threads[i].st = RUN;
    emu_async_reset(nthreads);
    const int nwarps = (nthreads + 31) / 32;
    // The order fibers run in between barriers: a race-free kernel gives
    // the same result in every order (EMU_ORDER=forward|reverse|random).
    static std::vector<int> order;
    order.resize(nthreads);
    for (int i = 0; i < nthreads; i++) order[i] = i;
    static const char* mode = getenv("EMU_ORDER");
    static unsigned long long rs = 88172645463325252ull;
    if (mode && strcmp(mode, "reverse") == 0) std::reverse(order.begin(), order.end());
    for (;;) {
        if (mode && strcmp(mode, "random") == 0) {
            for (int i = nthreads - 1; i > 0; i--) {
                rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
                std::swap(order[i], order[rs % (unsigned long long)(i + 1)]);
            }
        }
        bool any = false;
        for (int oi = 0; oi < nthreads; oi++) {
            const int i = order[oi];
            if (threads[i].st != RUN) continue;
            any = true;
            resume(i);
            if (!emu_err.empty()) return false;
        }
        (void)any;
        int alive = 0, atBlock = 0, atWarp = 0;
        for (int i = 0; i < nthreads; i++) {
            if (threads[i].st != DONE) alive++;
            if (threads[i].st == WAIT_BLOCK) atBlock++;
            if (threads[i].st == WAIT_WARP) atWarp++;
        }
        if (alive == 0) return true;
        bool released = false;
        for (int w = 0; w < nwarps; w++) {
            int lo = w * 32, hi = min(nthreads, lo + 32);
            int waiting = 0, done = 0;
            for (int i = lo; i < hi; i++) {
                if (threads[i].st == WAIT_WARP) waiting++;
                if (threads[i].st == DONE) done++;
            }
            if (waiting == 0) continue;
            if (waiting != hi - lo) {
                if (waiting + done == hi - lo) {
                    snprintf(errbuf, sizeof errbuf, "warp op in warp %d with %d exited lanes", w, done);
                    fail(errbuf);
                    return false;
                }
                continue;  // others still elsewhere (block barrier): may deadlock, checked below
            }
            if (hi - lo != 32) { fail("warp op in a partial warp"); return false; }
            int kind = threads[lo].kind;
            for (int i = lo; i < hi; i++) {
                if (threads[i].kind != kind || threads[i].mask != 0xffffffffu) {
                    fail("warp op mismatch (different ops or masks in one warp)");
                    return false;
                }
                if (kind >= EMU_MMA_BF16 && threads[i].arg != threads[lo].arg) {
                    snprintf(errbuf, sizeof errbuf, "warp %d: lanes 0 and %d run %s with different shapes or qualifiers",
                             w, i - lo, kind == EMU_MMA_BF16 ? "mma.sync" : "ldmatrix");
                    fail(errbuf);
                    return false;
                }
            }
            if (kind >= EMU_MMA_BF16) {
                const void* in[32];
                void* out[32];
                for (int i = lo; i < hi; i++) {
                    in[i - lo] = threads[i].in;
                    out[i - lo] = threads[i].out;
                }
                std::string err = emu_run_collective(kind, threads[lo].arg, in, out);
                if (!err.empty()) {
                    snprintf(errbuf, sizeof errbuf, "warp %d: %s", w, err.c_str());
                    fail(errbuf);
                    return false;
                }
                for (int i = lo; i < hi; i++) threads[i].st = RUN;
                released = true;
                continue;
            }
            unsigned ball = 0;
            for (int i = lo; i < hi; i++) if (threads[i].val) ball |= 1u << (i - lo);
            for (int i = lo; i < hi; i++) {
                EmuThread& t = threads[i];
                int lane = i - lo;
                switch (kind) {
                case EMU_SYNCWARP: t.res = 0; break;
                case EMU_SHFL_XOR: t.res = threads[lo + ((lane ^ t.arg) & 31)].val; break;
                case EMU_SHFL_UP: t.res = lane - t.arg >= 0 ? threads[lo + lane - t.arg].val : t.val; break;
                case EMU_BALLOT: t.res = ball; break;
                }
            }
            for (int i = lo; i < hi; i++) threads[i].st = RUN;
            released = true;
        }
        if (released) continue;
        if (atBlock == alive && atBlock > 0) {
            if (alive != nthreads) {
                snprintf(errbuf, sizeof errbuf, "__syncthreads with %d of %d threads exited", nthreads - alive, nthreads);
                fail(errbuf);
                return false;
            }
            for (int i = 0; i < nthreads; i++) if (threads[i].st == WAIT_BLOCK) threads[i].st = RUN;
            continue;
        }
        snprintf(errbuf, sizeof errbuf, "deadlock: %d alive, %d at __syncthreads, %d at warp ops", alive, atBlock, atWarp);
        fail(errbuf);
        return false;
    }
}

#include "emu_reg.h"
extern EmuKernel emu_kernels[];
extern int emu_nkernels;

extern "C" const char* emu_launch(const char* name, int gx, int gy, int gz, int bx, int by, int bz, int smem,
                                  void** args, const int* sizes, int nargs) {
    emu_err.clear();
    EmuKernel* k = nullptr;
    for (int i = 0; i < emu_nkernels; i++)
        if (strcmp(emu_kernels[i].name, name) == 0) k = &emu_kernels[i];
    if (!k) { snprintf(errbuf, sizeof errbuf, "no kernel %s", name); return errbuf; }
    if (k->nargs != nargs) {
        snprintf(errbuf, sizeof errbuf, "%s: %d args, kernel takes %d", name, nargs, k->nargs);
        return errbuf;
    }
    for (int i = 0; i < nargs; i++) {
        if (k->sizes[i] != sizes[i]) {
            snprintf(errbuf, sizeof errbuf, "%s: arg %d has %d bytes, kernel wants %d", name, i, sizes[i], k->sizes[i]);
            return errbuf;
        }
    }
    int nthreads = bx * by * bz;
    if (nthreads > 1024 || nthreads <= 0) { snprintf(errbuf, sizeof errbuf, "%s: block of %d threads", name, nthreads); return errbuf; }
    if (smem > 227 * 1024) { snprintf(errbuf, sizeof errbuf, "%s: %d bytes of dynamic smem", name, smem); return errbuf; }
    if ((int)threads.size() < nthreads) {
        size_t old = threads.size();
        threads.resize(nthreads);
        for (size_t i = old; i < threads.size(); i++) {
            threads[i].stack = (char*)malloc(STACK);
            threads[i].started = false;
        }
    }
    static std::vector<unsigned char> dyn;
    dyn.assign(smem + 16, 0xFF);  // NaN-filled: uninitialised shared memory shows
    emu_dyn_smem = (unsigned char*)(((uintptr_t)dyn.data() + 15) & ~(uintptr_t)15);
    emu_gridDim = uint3{(unsigned)gx, (unsigned)gy, (unsigned)gz};
    emu_blockDim = uint3{(unsigned)bx, (unsigned)by, (unsigned)bz};
    for (int i = 0; i < nthreads; i++) {
        threads[i].lin = i;
        threads[i].tid = uint3{(unsigned)(i % bx), (unsigned)((i / bx) % by), (unsigned)(i / (bx * by))};
    }
    cur_kernel = [k, args]() { k->call(k->f, args); };
    for (int z = 0; z < gz; z++)
        for (int y = 0; y < gy; y++)
            for (int x = 0; x < gx; x++) {
                emu_blockIdx = uint3{(unsigned)x, (unsigned)y, (unsigned)z};
                std::fill(dyn.begin(), dyn.end(), 0xFF);
                if (!run_block(nthreads)) {
                    abandon(nthreads);
                    snprintf(errbuf, sizeof errbuf, "%s block (%d,%d,%d): %s", name, x, y, z, emu_err.c_str());
                    return errbuf;
                }
            }
    return nullptr;
}
