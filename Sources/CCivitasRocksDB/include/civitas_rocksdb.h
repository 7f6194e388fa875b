#ifndef CIVITAS_ROCKSDB_H
#define CIVITAS_ROCKSDB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Options RocksDB's C API does not reach. `options` is a `rocksdb_options_t *`.
///
/// Inserts into the memtable start from where the last key of the same `prefix_length`
/// byte prefix went in, rather than from the top of the skip list: a batch written in
/// key order then costs a few comparisons per key instead of a full search.
void civitas_rocksdb_options_set_memtable_insert_hint_prefix(void *options, size_t prefix_length);

/// Runs the process's RocksDB flush and compaction threads at the lowest CPU priority
/// (nice 19): they are throughput work, and on a machine whose cores are busy they would
/// otherwise delay the thread that executes, votes and commits blocks.
void civitas_rocksdb_lower_background_cpu_priority(void);

/// 1 if a file opened with O_DIRECT can be created in `directory` (the probe file is
/// removed), 0 if not: some filesystems refuse direct I/O (tmpfs did before recent kernels).
int civitas_direct_writes_work(const char *directory);

#ifdef __cplusplus
}
#endif

#endif
