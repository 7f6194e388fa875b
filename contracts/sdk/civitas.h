// The Civitas contract host for C contracts: the same imports the Swift SDK uses.
// A C contract defines civitas_call and civitas_alloc with CIVITAS_EXPORT and is
// built by `civitas contract build DIR` like a Swift one.
#ifndef CIVITAS_H
#define CIVITAS_H
#include <stddef.h>
#include <stdint.h>

#define CIVITAS_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define CIVITAS_EXPORT(name) __attribute__((export_name(#name)))

CIVITAS_IMPORT(storage_get) int32_t civitas_storage_get(const void *key, int32_t key_length, void *out, int32_t capacity);
CIVITAS_IMPORT(storage_put) void civitas_storage_put(const void *key, int32_t key_length, const void *value, int32_t value_length);
CIVITAS_IMPORT(storage_delete) void civitas_storage_delete(const void *key, int32_t key_length);
CIVITAS_IMPORT(caller) void civitas_caller(void *out32);
CIVITAS_IMPORT(origin) void civitas_origin(void *out32);
CIVITAS_IMPORT(self_address) void civitas_self_address(void *out32);
CIVITAS_IMPORT(block_height) uint64_t civitas_block_height(void);
CIVITAS_IMPORT(emit_event) void civitas_emit_event(const void *name, int32_t name_length, const void *attributes, int32_t attributes_length);
CIVITAS_IMPORT(return_data) void civitas_return_data(const void *data, int32_t length);
CIVITAS_IMPORT(revert) void civitas_revert(const void *message, int32_t length);
CIVITAS_IMPORT(hash_sha256) void civitas_hash_sha256(const void *data, int32_t length, void *out32);
CIVITAS_IMPORT(hash_sm3) void civitas_hash_sm3(const void *data, int32_t length, void *out32);
CIVITAS_IMPORT(log) void civitas_log(const void *message, int32_t length);
CIVITAS_IMPORT(call_module) int32_t civitas_call_module(
    const void *module, int32_t module_length, const void *method, int32_t method_length,
    const void *arguments, int32_t arguments_length, void *out, int32_t capacity);

void *malloc(size_t size);
void *memcpy(void *to, const void *from, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif
