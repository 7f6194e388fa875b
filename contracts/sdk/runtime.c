// What Embedded Swift expects from a C library, for a contract: memory allocation,
// the mem* functions, and two compiler helpers. Built with
// clang --target=wasm32-unknown-unknown -O2 -mbulk-memory by `civitas contract build`.
//
// Each call runs in a fresh instance, so the allocator never needs to give memory
// back: it bumps a pointer and grows memory by pages (the host caps and charges that).
#include <stddef.h>
#include <stdint.h>

extern unsigned char __heap_base;
static uintptr_t heap_next = 0;
static uintptr_t heap_end = 0;

int posix_memalign(void **out, size_t alignment, size_t size) {
  if (heap_next == 0) {
    heap_next = (uintptr_t)&__heap_base;
    heap_end = __builtin_wasm_memory_size(0) * 65536;
  }
  if (alignment < 8) alignment = 8;
  uintptr_t start = (heap_next + alignment - 1) & ~(uintptr_t)(alignment - 1);
  uintptr_t end = start + size;
  if (end < start) { *out = 0; return 12; }
  if (end > heap_end) {
    size_t pages = (end - heap_end + 65535) / 65536;
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) { *out = 0; return 12; }
    heap_end += pages * 65536;
  }
  heap_next = end;
  *out = (void *)start;
  return 0;
}

void *malloc(size_t size) {
  void *p;
  return posix_memalign(&p, 16, size) ? 0 : p;
}

void *calloc(size_t count, size_t size) {
  void *p = malloc(count * size);
  if (p) __builtin_memset(p, 0, count * size);
  return p;
}

void free(void *pointer) { (void)pointer; }

void *memcpy(void *to, const void *from, size_t n) { __builtin_memcpy(to, from, n); return to; }
void *memmove(void *to, const void *from, size_t n) { __builtin_memmove(to, from, n); return to; }
void *memset(void *to, int c, size_t n) { __builtin_memset(to, c, n); return to; }

int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

// Swift seeds its hashing from here. A contract must run identically on every node,
// so the seed is fixed (and Dictionary and Set are still best avoided, see the SDK).
void arc4random_buf(void *buffer, size_t n) { __builtin_memset(buffer, 0, n); }

// 128-bit multiplication (overflow checks of 64-bit multiplies), which compiler-rt
// would give and this toolchain has no wasm32 build of.
static uint64_t multiply_high(uint64_t a, uint64_t b) {
  uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  uint64_t middle = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
  return p11 + (p01 >> 32) + (p10 >> 32) + (middle >> 32);
}

__int128 __multi3(__int128 a, __int128 b) {
  uint64_t a_low = (uint64_t)a, a_high = (uint64_t)((unsigned __int128)a >> 64);
  uint64_t b_low = (uint64_t)b, b_high = (uint64_t)((unsigned __int128)b >> 64);
  uint64_t low = a_low * b_low;
  uint64_t high = multiply_high(a_low, b_low) + a_low * b_high + a_high * b_low;
  return (__int128)(((unsigned __int128)high << 64) | low);
}
