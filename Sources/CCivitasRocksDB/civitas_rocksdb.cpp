#include "civitas_rocksdb.h"

#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>

// The C API's rocksdb_options_t is `struct { rocksdb::Options rep; }` (db/c.cc): a
// pointer to it is a pointer to its only member.
void civitas_rocksdb_options_set_memtable_insert_hint_prefix(void *options, size_t prefix_length) {
    auto *rep = static_cast<rocksdb::Options *>(options);
    rep->memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(prefix_length));
}

void civitas_rocksdb_lower_background_cpu_priority(void) {
    auto *env = rocksdb::Env::Default();
    env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH, rocksdb::CpuPriority::kLow);
    env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow);
}
