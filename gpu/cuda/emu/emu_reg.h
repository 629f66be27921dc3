#pragma once
#include <utility>
#include <type_traits>
// ---- kernel registry ----
struct EmuKernel {
    const char* name;
    int nargs;
    const int* sizes;
    void (*call)(void* f, void** args);
    void* f;
};

template <class T>
using emu_plain = std::remove_cv_t<std::remove_reference_t<T>>;

template <class... A>
struct EmuSig {
    static constexpr int sizes[sizeof...(A) + 1] = {(int)sizeof(emu_plain<A>)..., 0};
    template <size_t... I>
    static void callI(void* f, void** args, std::index_sequence<I...>) {
        reinterpret_cast<void (*)(A...)>(f)(*reinterpret_cast<emu_plain<A>*>(args[I])...);
    }
    static void call(void* f, void** args) { callI(f, args, std::index_sequence_for<A...>{}); }
};

template <class... A>
EmuKernel emu_make(const char* name, void (*f)(A...)) {
    return EmuKernel{name, (int)sizeof...(A), EmuSig<A...>::sizes, &EmuSig<A...>::call, (void*)f};
}

