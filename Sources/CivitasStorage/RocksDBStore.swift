import CCivitasRocksDB
import CRocksDB
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The node's store: RocksDB through its C API.
///
/// One RocksDB instance per node home; keys are namespaced by a one-byte prefix chosen
/// by the layer above (see `docs/architecture.md`, "Storage layout").
///
/// The bulky prefixes whose keys are written in increasing order (blocks and receipts by
/// height, tree nodes by version, the lists of replaced nodes by height) each live in a
/// column family of their own: there a flush's file lies after every older one, and
/// compaction moves it down instead of merging it with files of keys written at random. The flat state values, written at random and as many as
/// there are keys in state, have a family of their own too, so that the transaction
/// index and the small prefixes, which the default family keeps, are not merged with
/// them at every compaction.
public final class RocksDBStore: KeyValueStore, @unchecked Sendable {
    /// The column families beside the default one, by the prefix they hold, and how their
    /// files are compressed.
    static let families: [(prefix: StorePrefix, name: String, compression: Compression)] = [
        (.block, "blocks", .everyLevel), (.stateNode, "state-nodes", .uncompressed), (.stateValue, "state-values", .uncompressed),
        (.receipt, "receipts", .everyLevel), (.staleStateNode, "state-stale", .uncompressed),
    ]

    enum Compression {
        /// Tree nodes are mostly hashes, which compression cannot shrink: compressing every
        /// flushed block of them took a third of RocksDB's background work at 10 million
        /// keys. Values are stored as written; Snappy was 12% of the compaction threads'
        /// time with 10M values of random letters in the default family, for little it
        /// could shrink.
        case uncompressed
        /// Snappy from the flush on, for families written in key order (blocks and receipts
        /// by height): their files are never merged with others, only moved down a level,
        /// and a move keeps a file as it is only when both levels compress alike. Compressed
        /// only below level 1, as the default family is, each of their files was rewritten
        /// once more, from level 1 into level 2, to compress it (about 2% of the machine on a
        /// 10M-key network whose level 1 was full; docs/benchmarks.md, session 18).
        case everyLevel
    }

    // RocksDB's handles are thread-safe for concurrent reads and writes; the options
    // objects are only read after creation.
    private let db: OpaquePointer
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let asyncWrite: OpaquePointer
    private let options: OpaquePointer
    private let uncompressedOptions: OpaquePointer
    private let everyLevelOptions: OpaquePointer
    private let tableOptions: OpaquePointer
    private let blockCache: OpaquePointer
    /// The handle of each family of `families`, in its order.
    private let familyHandles: [OpaquePointer]
    private let defaultFamily: OpaquePointer
    /// The family of each first key byte: an index into `families`, or -1 for the default.
    private let familyOfPrefix: [Int8]
    /// Readers and writers hold it shared; `close` holds it exclusively, so the handle is
    /// never closed under an operation and never used after.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private nonisolated(unsafe) var closed = false

    /// Shared by a store's tables: state nodes and recent blocks stay in memory.
    public static let blockCacheBytes = 256 << 20
    static let walBytesMax: UInt64 = 1 << 30
    static let memtableBytes = (48 << 20)...(80 << 20)
    static let level0FilesPerCompaction: Int32 = 8
    static let level1Bytes: UInt64 = 512 << 20
    /// Threads reading a `getMany` together, made at its first use. A cloud volume here took
    /// about 0.4 ms per read from one thread and served over 10,000 reads a second to
    /// several (docs/benchmarks.md, session 14).
    private let readers = Mutex<ReadPool?>(nil)
    static let readThreads = 16
    /// Fewer keys than this are read in turn: handing them out costs more than it saves
    /// when they are in memory.
    static let concurrentReadsFrom = 8
    public let path: String
    /// Whether flushes and compactions write around the page cache (O_DIRECT).
    public let directWrites: Bool

    /// `moving` is told, when the store opens, of each move of keys into the column family
    /// they now belong to (a store written by an earlier release): when it starts, and when
    /// it ends with the count moved. Such a move can take minutes on a large state, before
    /// the caller can do anything else.
    public init(path: String, moving: ((FamilyMove) -> Void)? = nil) throws(StorageError) {
        self.path = path
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_set_create_missing_column_families(options, 1)
        // A WAL file goes only when every family's data in it is flushed; past this total
        // the family holding the oldest is flushed. RocksDB's default (four times all the
        // memtables) kept 3 GB of WAL per node with three families. At 256 MiB the tree
        // nodes' bytes filled it every ~25 blocks and forced the families written at
        // random (values, the transaction index) to flush 15–22 MB files, eight of which
        // then rewrote all of their level 1 (490 MB of values at 10 million keys): at
        // 1 GiB their memtables mostly fill first, and that rewrite comes a third as often
        // (docs/benchmarks.md, session 17). A restart replays at most this much.
        rocksdb_options_set_max_total_wal_size(options, Self.walBytesMax)
        rocksdb_options_increase_parallelism(options, 2)
        // Validators write the same blocks, so with equal memtables they would all flush
        // at the same height, and a flush slows the node's own writes for a moment: every
        // node slow at once is the whole network slow. Memtables of sizes drawn at random
        // from 48–80 MiB spread the flushes, and a quorum forms around the one flushing.
        rocksdb_options_set_write_buffer_size(options, Int(Self.memtableBytes.randomElement()!))
        // Flushes and compactions are throughput work; the node's own thread, which
        // executes, votes and commits, should not wait behind them for a core. The nodes
        // of a one-machine network fill their memtables in step and flush at once: blocks
        // committed at those moments took 250–330 ms longer (docs/benchmarks.md).
        civitas_rocksdb_lower_background_cpu_priority()
        // Leveled compaction (the default). Tree nodes are keyed by the version that wrote
        // them, so each block's nodes sort after all older ones: a compaction into a level
        // overlaps only the newest nodes there, and the bulk of the tree is not rewritten.
        // Universal compaction rewrote whole sorted runs however little they overlapped
        // (ADR 0011). The families of keys written at random (values; the transaction
        // index, in the default one) rewrite all of level 1 at each compaction from level
        // 0, beside the new files: gathering eight files rather than four halves how often
        // that happens. Level 1 is sized to hold what those eight files bring.
        rocksdb_options_set_level0_file_num_compaction_trigger(options, Self.level0FilesPerCompaction)
        rocksdb_options_set_max_bytes_for_level_base(options, Self.level1Bytes)
        // Most reads are point lookups of hashes, many of absent keys (is this
        // transaction already committed?): bloom filters on tables and memtables answer
        // those without reading a block.
        tableOptions = rocksdb_block_based_options_create()
        blockCache = rocksdb_cache_create_lru(Self.blockCacheBytes)
        rocksdb_block_based_options_set_block_cache(tableOptions, blockCache)
        rocksdb_block_based_options_set_filter_policy(tableOptions, rocksdb_filterpolicy_create_bloom_full(10))
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(tableOptions, 1)
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(options, 0.1)
        rocksdb_options_set_memtable_whole_key_filtering(options, 1)
        // A block's batch is written in key order (see `write`); with a hint per store
        // prefix each key is inserted next to the previous one of its prefix.
        civitas_rocksdb_options_set_memtable_insert_hint_prefix(UnsafeMutableRawPointer(options), 1)
        var error: UnsafeMutablePointer<CChar>?
        // Families an earlier release made and this one does not use are opened too (RocksDB
        // opens a store only with all of its families), emptied below, and dropped.
        var existing: [String] = []
        var existingCount = 0
        if let list = rocksdb_list_column_families(options, path, &existingCount, &error) {
            existing = (0..<existingCount).compactMap { list[$0].map { String(cString: $0) } }
            rocksdb_list_column_families_destroy(list, existingCount)
        }
        // A new store has no families to list.
        _ = Self.take(error)
        error = nil
        let known = ["default"] + Self.families.map(\.name)
        let names = known + existing.filter { !known.contains($0) }
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        uncompressedOptions = rocksdb_options_create_copy(options)
        rocksdb_options_set_compression(uncompressedOptions, Int32(rocksdb_no_compression))
        everyLevelOptions = rocksdb_options_create_copy(options)
        rocksdb_options_set_compression(everyLevelOptions, Int32(rocksdb_snappy_compression))
        // In the default family, whose keys come at random, levels 0 and 1 are rewritten
        // soonest and most often (each compaction from level 0 rewrites all of level 1):
        // compressing them cost Snappy in every flush and every such compaction, 2% of the
        // machine with 1M keys in state, for bytes that are rewritten again within minutes.
        // Deeper levels, where data stays, compress.
        Self.compressBelowLevel1(options)
        // Flushes and compactions write files that are read back through the block cache,
        // if at all soon: copying each of their pages into the kernel's page cache was 4% of
        // the machine with 1M keys in state (`copy_folio_from_iter_atomic`). Only where the
        // filesystem takes O_DIRECT (tmpfs refused it before recent kernels).
        directWrites = Self.directWritesWork(at: path)
        if directWrites { rocksdb_options_set_use_direct_io_for_flush_and_compaction(options, 1) }
        let options = options
        let uncompressedOptions = uncompressedOptions
        let everyLevelOptions = everyLevelOptions
        let familyOptions: [OpaquePointer?] = names.map { name in
            switch Self.families.first(where: { $0.name == name })?.compression {
            case .uncompressed?: uncompressedOptions
            case .everyLevel?: everyLevelOptions
            case nil: options
            }
        }
        let opened = cNames.map { UnsafePointer($0) }.withUnsafeBufferPointer { nameList in
            familyOptions.withUnsafeBufferPointer { optionList in
                handles.withUnsafeMutableBufferPointer { handleList in
                    rocksdb_open_column_families(
                        options, path, Int32(names.count), nameList.baseAddress, optionList.baseAddress, handleList.baseAddress,
                        &error)
                }
            }
        }
        guard let handle = opened else {
            let message = Self.take(error) ?? "unknown error"
            Self.destroy([options, uncompressedOptions, everyLevelOptions], tableOptions, blockCache)
            throw StorageError(.openFailed, "cannot open RocksDB at \(path): \(message)")
        }
        db = handle
        defaultFamily = handles[0]!
        familyHandles = handles[1..<known.count].map { $0! }
        let retired = handles[known.count...].map { $0! }
        var familyOfPrefix = [Int8](repeating: -1, count: 256)
        for (index, family) in Self.families.enumerated() { familyOfPrefix[Int(family.prefix.rawValue)] = Int8(index) }
        self.familyOfPrefix = familyOfPrefix
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
        readOptions = rocksdb_readoptions_create()
        syncWrite = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(syncWrite, 1)
        asyncWrite = rocksdb_writeoptions_create()
        // Families a release no longer uses are emptied and dropped; a store written
        // before a family existed holds its keys in the default family.
        for (family, name) in zip(retired, names[known.count...]) {
            try move(prefix: [], from: family, into: nil, leaving: name, moving)
            rocksdb_drop_column_family(db, family, &error)
            rocksdb_column_family_handle_destroy(family)
            if let message = Self.take(error) { throw StorageError(.writeFailed, "dropping an unused column family: \(message)") }
        }
        for family in Self.families {
            try move(prefix: [family.prefix.rawValue], from: defaultFamily, into: family.name, leaving: "default", moving)
        }
    }

    /// A move of keys between column families, as `init` reports it.
    public struct FamilyMove: Sendable, Equatable {
        public var from: String
        /// Nil when each key goes to the family of its prefix (a family no longer used is
        /// emptied).
        public var into: String?
        /// Nil when the move starts; the keys moved when it ends.
        public var moved: Int?
    }

    /// Moves the keys under `prefix` in `source` to the family each now belongs to, a page
    /// per durable batch, so an interrupted move resumes where it stopped. Each page is
    /// read from just after the last key moved: from the prefix's start, every page would
    /// step over the deletions of all the pages before it (four stores of 10 million values
    /// on one machine were still moving after ten minutes; reading on, they were done in
    /// about a minute and a half).
    private func move(
        prefix: [UInt8], from source: OpaquePointer, into target: String?, leaving sourceName: String,
        _ report: ((FamilyMove) -> Void)?
    ) throws(StorageError) {
        var start: [UInt8]? = nil
        var moved = 0
        while true {
            let page = try scan(prefix: prefix, start: start, limit: 10_000, family: source, db)
            guard let last = page.last else {
                if moved > 0 { report?(FamilyMove(from: sourceName, into: target, moved: moved)) }
                return
            }
            if moved == 0 { report?(FamilyMove(from: sourceName, into: target, moved: nil)) }
            moved += page.count
            var batch = WriteBatch()
            for entry in page { batch.put(entry.key, entry.value) }
            try write(batch, durable: true, removingFrom: source, db)
            start = last.key + [0]
        }
    }

    /// Whether a file opened with O_DIRECT can be created where the store lives (its
    /// directory, or the parent it will be created in).
    static func directWritesWork(at path: String) -> Bool {
        var directory = path
        if access(path, F_OK) != 0 {
            let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
            directory = trimmed.lastIndex(of: "/").map { String(trimmed[..<$0]) } ?? "."
            if directory.isEmpty { directory = "/" }
        }
        return civitas_direct_writes_work(directory) == 1
    }

    /// Releases the options a store opened with, on its failure to open and at its end.
    private static func destroy(_ options: [OpaquePointer], _ tableOptions: OpaquePointer, _ blockCache: OpaquePointer) {
        options.forEach { rocksdb_options_destroy($0) }
        rocksdb_block_based_options_destroy(tableOptions)
        rocksdb_cache_destroy(blockCache)
    }

    /// A helper rather than inline in `init`: there, the Swift 6.3.1 compiler's
    /// sendability analysis crashed on it.
    private static func compressBelowLevel1(_ options: OpaquePointer) {
        var perLevel = [Int32](repeating: Int32(rocksdb_snappy_compression), count: 7)
        perLevel[0] = Int32(rocksdb_no_compression)
        perLevel[1] = Int32(rocksdb_no_compression)
        perLevel.withUnsafeMutableBufferPointer { rocksdb_options_set_compression_per_level(options, $0.baseAddress, $0.count) }
    }

    /// The family of `key` among `families`, or nil for the default one.
    private func family(of key: [UInt8]) -> OpaquePointer? {
        guard let first = key.first else { return nil }
        let index = familyOfPrefix[Int(first)]
        return index < 0 ? nil : familyHandles[Int(index)]
    }

    deinit {
        readers.withLock { $0?.stop() }
        if !closed {
            (familyHandles + [defaultFamily]).forEach { rocksdb_column_family_handle_destroy($0) }
            rocksdb_close(db)
        }
        pthread_rwlock_destroy(lock)
        lock.deallocate()
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWrite)
        rocksdb_writeoptions_destroy(asyncWrite)
        Self.destroy([options, uncompressedOptions, everyLevelOptions], tableOptions, blockCache)
    }

    /// Closes the database: flushes nothing more (every durable batch is in the WAL),
    /// stops RocksDB's background work and releases the directory's lock. A process must
    /// close its store before it exits: RocksDB's threads still running at exit abort it.
    /// Operations after this throw `storage.closed`.
    public func close() {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard !closed else { return }
        closed = true
        (familyHandles + [defaultFamily]).forEach { rocksdb_column_family_handle_destroy($0) }
        rocksdb_close(db)
    }

    private func open<T>(_ body: (OpaquePointer) throws(StorageError) -> T) throws(StorageError) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard !closed else { throw StorageError(.closed, "the store at \(path) is closed") }
        return try body(db)
    }

    private static func take(_ error: UnsafeMutablePointer<CChar>?) -> String? {
        guard let error else { return nil }
        defer { rocksdb_free(error) }
        return String(cString: error)
    }

    public func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        try open { db throws(StorageError) in try get(key, db) }
    }

    private func get(_ key: [UInt8], _ db: OpaquePointer) throws(StorageError) -> [UInt8]? {
        var error: UnsafeMutablePointer<CChar>?
        var length = 0
        let family = family(of: key)
        let value = key.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                if let family { return rocksdb_get_cf(db, readOptions, family, $0.baseAddress, $0.count, &length, &error) }
                return rocksdb_get(db, readOptions, $0.baseAddress, $0.count, &length, &error)
            }
        }
        if let message = Self.take(error) { throw StorageError(.readFailed, message) }
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return value.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }

    public func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] {
        guard keys.count >= Self.concurrentReadsFrom else { return try getEach(keys) }
        let pool = readers.withLock { pool in
            if let pool { return pool }
            let made = ReadPool(threads: Self.readThreads, name: "civitas-read")
            pool = made
            return made
        }
        return try open { db throws(StorageError) in
            let values = ReadResults(count: keys.count)
            nonisolated(unsafe) let db = db
            try pool.forEach(keys.count) { [self] index throws(StorageError) in values.buffer[index] = try get(keys[index], db) }
            return Array(values.buffer)
        }
    }

    /// Slots the readers of one `getMany` each fill one of.
    private final class ReadResults: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<[UInt8]?>
        init(count: Int) {
            buffer = .allocate(capacity: count)
            buffer.initialize(repeating: nil)
        }
        deinit {
            buffer.deinitialize()
            buffer.deallocate()
        }
    }

    public func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) {
        try open { db throws(StorageError) in try write(batch, durable: durable, db) }
    }

    /// Syncs the write-ahead log: every batch written before is then durable.
    public func sync() throws(StorageError) {
        try open { db throws(StorageError) in
            var error: UnsafeMutablePointer<CChar>?
            rocksdb_flush_wal(db, 1, &error)
            if let message = Self.take(error) { throw StorageError(.writeFailed, "syncing the write-ahead log: \(message)") }
        }
    }

    /// `removingFrom` also deletes each key put from that family (another than the one
    /// the key belongs to), in the same batch.
    private func write(_ batch: WriteBatch, durable: Bool, removingFrom retired: OpaquePointer? = nil, _ db: OpaquePointer)
        throws(StorageError)
    {
        let handle = rocksdb_writebatch_create()
        defer { rocksdb_writebatch_destroy(handle) }
        let operations = batch.operations
        for position in Self.keyOrder(operations) {
            let operation = operations[position]
            switch operation {
            case .put(let key, let value):
                let family = family(of: key)
                key.withUnsafeBufferPointer { k in
                    value.withUnsafeBufferPointer { v in
                        k.withMemoryRebound(to: CChar.self) { k in
                            v.withMemoryRebound(to: CChar.self) { v in
                                if let retired { rocksdb_writebatch_delete_cf(handle, retired, k.baseAddress, k.count) }
                                if let family {
                                    rocksdb_writebatch_put_cf(handle, family, k.baseAddress, k.count, v.baseAddress, v.count)
                                } else {
                                    rocksdb_writebatch_put(handle, k.baseAddress, k.count, v.baseAddress, v.count)
                                }
                            }
                        }
                    }
                }
            case .delete(let key):
                let family = family(of: key)
                key.withUnsafeBufferPointer { k in
                    k.withMemoryRebound(to: CChar.self) {
                        if let family {
                            rocksdb_writebatch_delete_cf(handle, family, $0.baseAddress, $0.count)
                        } else {
                            rocksdb_writebatch_delete(handle, $0.baseAddress, $0.count)
                        }
                    }
                }
            }
        }
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, durable ? syncWrite : asyncWrite, handle, &error)
        if let message = Self.take(error) { throw StorageError(.writeFailed, message) }
    }

    /// The positions of `operations` in key order, a key's own operations in the order
    /// given (RocksDB applies a batch's operations on one key in order, the last wins).
    /// A block's batch is thousands of hashes in random order; sorted, each memtable
    /// insert starts from its predecessor's place instead of the skip list's top.
    static func keyOrder(_ operations: [WriteBatch.Operation]) -> [Int] {
        let keys = operations.map { operation in
            switch operation {
            case .put(let key, _): key
            case .delete(let key): key
            }
        }
        // Sorted on each key's first sixteen bytes (zero-padded), which nearly always
        // differ (a block's tree nodes share their first nine: prefix and version):
        // comparing bytes through the arrays for every step cost more than the inserts
        // it saved.
        var entries = keys.enumerated().map { position, key in
            var head: UInt64 = 0
            var next: UInt64 = 0
            for index in 0..<8 { head = head << 8 | UInt64(index < key.count ? key[index] : 0) }
            for index in 8..<16 { next = next << 8 | UInt64(index < key.count ? key[index] : 0) }
            return (head: head, next: next, position: position)
        }
        entries.sort { left, right in
            if left.head != right.head { return left.head < right.head }
            if left.next != right.next { return left.next < right.next }
            let order = compare(keys[left.position], keys[right.position])
            return order != 0 ? order < 0 : left.position < right.position
        }
        return entries.map(\.position)
    }

    private static func compare(_ left: [UInt8], _ right: [UInt8]) -> Int32 {
        left.withUnsafeBufferPointer { a in
            right.withUnsafeBufferPointer { b in
                let length = min(a.count, b.count)
                let common = length == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, length)
                return common != 0 ? common : (a.count < b.count ? -1 : a.count > b.count ? 1 : 0)
            }
        }
    }

    public func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try open { db throws(StorageError) in
            guard prefix.isEmpty else { return try scan(prefix: prefix, start: start, limit: limit, family: family(of: prefix), db) }
            // The whole store: each family's first keys from `start`, merged in key order.
            var merged = try scan(prefix: [], start: start, limit: limit, family: nil, db)
            for family in familyHandles { merged += try scan(prefix: [], start: start, limit: limit, family: family, db) }
            merged.sort { Self.compare($0.key, $1.key) < 0 }
            return Array(merged.prefix(limit))
        }
    }

    private func scan(prefix: [UInt8], start: [UInt8]?, limit: Int, family: OpaquePointer?, _ db: OpaquePointer)
        throws(StorageError) -> [(key: [UInt8], value: [UInt8])]
    {
        let iterator = family.map { rocksdb_create_iterator_cf(db, readOptions, $0) } ?? rocksdb_create_iterator(db, readOptions)
        defer { rocksdb_iter_destroy(iterator) }
        let seek = start ?? prefix
        seek.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek(iterator, $0.baseAddress, $0.count) }
        }
        var results: [(key: [UInt8], value: [UInt8])] = []
        while results.count < limit, rocksdb_iter_valid(iterator) != 0 {
            var keyLength = 0
            var valueLength = 0
            let keyPointer = rocksdb_iter_key(iterator, &keyLength)!
            let key = keyPointer.withMemoryRebound(to: UInt8.self, capacity: keyLength) {
                Array(UnsafeBufferPointer(start: $0, count: keyLength))
            }
            // Keys are sorted, so the first one without the prefix ends the range.
            guard key.starts(with: prefix) else { break }
            let valuePointer = rocksdb_iter_value(iterator, &valueLength)
            let value = valuePointer.map { pointer in
                pointer.withMemoryRebound(to: UInt8.self, capacity: valueLength) {
                    Array(UnsafeBufferPointer(start: $0, count: valueLength))
                }
            } ?? []
            results.append((key, value))
            rocksdb_iter_next(iterator)
        }
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(iterator, &error)
        if let message = Self.take(error) { throw StorageError(.readFailed, message) }
        return results
    }

    /// Bytes of the live SST files of every column family, for `bench` and `status`.
    public var approximateDiskBytes: UInt64 {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard !closed else { return 0 }
        return familySum("rocksdb.total-sst-files-size")
    }

    /// Read from RocksDB's properties; all zero once the store is closed.
    public var backlog: StoreBacklog? {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard !closed else { return StoreBacklog(pendingCompactionBytes: 0, level0Files: 0, runningCompactions: 0, runningFlushes: 0) }
        return StoreBacklog(
            pendingCompactionBytes: familySum("rocksdb.estimate-pending-compaction-bytes"),
            level0Files: level0Files,
            runningCompactions: Int(databaseProperty("rocksdb.num-running-compactions")),
            runningFlushes: Int(databaseProperty("rocksdb.num-running-flushes")))
    }

    /// Over every family. RocksDB gives a level's file count only as text. Under `lock`.
    private var level0Files: Int {
        func count(_ text: UnsafeMutablePointer<CChar>?) -> Int {
            guard let text else { return 0 }
            defer { rocksdb_free(text) }
            return Int(String(cString: text)) ?? 0
        }
        let property = "rocksdb.num-files-at-level0"
        return familyHandles.reduce(count(rocksdb_property_value(db, property))) { $0 + count(rocksdb_property_value_cf(db, $1, property)) }
    }

    /// An integer property of the database, or of its default family for a per-family one (0
    /// if RocksDB does not give it). Under `lock`.
    private func databaseProperty(_ name: String) -> UInt64 {
        var value: UInt64 = 0
        return rocksdb_property_int(db, name, &value) == 0 ? value : 0
    }

    /// An integer property summed over the default family and every other one. Under `lock`.
    private func familySum(_ name: String) -> UInt64 {
        familyHandles.reduce(databaseProperty(name)) { sum, family in
            var value: UInt64 = 0
            return sum + (rocksdb_property_int_cf(db, family, name, &value) == 0 ? value : 0)
        }
    }
}
