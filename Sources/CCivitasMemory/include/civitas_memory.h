#ifndef CIVITAS_MEMORY_H
#define CIVITAS_MEMORY_H

/* Asks the processor to start loading the cache line at `address` for reading, without
   waiting for it: Swift has no prefetch intrinsic. A hint only; any address is safe. */
static inline void civitas_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
