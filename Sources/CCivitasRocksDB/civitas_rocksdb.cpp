#include "civitas_rocksdb.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

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

int civitas_direct_writes_work(const char *directory) {
    std::string probe = std::string(directory) + "/.civitas-direct-io-" + std::to_string(getpid());
    int descriptor = open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_DIRECT, 0600);
    if (descriptor < 0) return 0;
    close(descriptor);
    unlink(probe.c_str());
    return 1;
}
