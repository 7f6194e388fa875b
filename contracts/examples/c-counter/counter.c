// A counter in C, to show that the host sees only WebAssembly: `increment` adds one
// and emits the new value; `get` returns it as a u64 value (tag 1, 8 bytes big-endian).
#include "civitas.h"

static const char KEY[] = "count";

static uint64_t load(void) {
  unsigned char value[8];
  if (civitas_storage_get(KEY, sizeof KEY - 1, value, 8) != 8) return 0;
  uint64_t count = 0;
  for (int i = 0; i < 8; i++) count = count << 8 | value[i];
  return count;
}

CIVITAS_EXPORT(civitas_alloc) void *civitas_alloc(int32_t size) { return malloc((size_t)size); }

CIVITAS_EXPORT(civitas_call) int32_t civitas_call(const char *method, int32_t method_length, const void *arguments, int32_t arguments_length) {
  (void)arguments;
  (void)arguments_length;
  unsigned char encoded[9];
  uint64_t count = load();
  if (method_length == 9 && memcmp(method, "increment", 9) == 0) {
    count += 1;
    for (int i = 0; i < 8; i++) encoded[1 + i] = (unsigned char)(count >> (56 - 8 * i));
    civitas_storage_put(KEY, sizeof KEY - 1, encoded + 1, 8);
    civitas_emit_event("incremented", 11, "\0\0\0\0", 4);
    return 0;
  }
  if (method_length == 3 && memcmp(method, "get", 3) == 0) {
    encoded[0] = 1;
    for (int i = 0; i < 8; i++) encoded[1 + i] = (unsigned char)(count >> (56 - 8 * i));
    civitas_return_data(encoded, 9);
    return 0;
  }
  static const char unknown[] = "unknown method";
  civitas_revert(unknown, sizeof unknown - 1);
  return 1;
}
