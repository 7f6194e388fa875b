import CRocksDB
@testable import CivitasStorage
import Foundation
import Testing

/// One suite, every backend: the node runs on RocksDB, tests and simulation on memory;
/// both must behave identically.
@Suite struct StorageSuiteTests {
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case memory, rocksdb
        var testDescription: String { rawValue }
    }

    func withStore(_ backend: Backend, _ body: (any KeyValueStore) throws -> Void) throws {
        switch backend {
        case .memory:
            try body(MemoryStore())
        case .rocksdb:
            let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try body(try RocksDBStore(path: path))
        }
    }

    @Test(arguments: Backend.allCases)
    func putGetDelete(_ backend: Backend) throws {
        try withStore(backend) { store in
            #expect(try store.get([1]) == nil)
            var batch = WriteBatch()
            batch.put([1], [10])
            batch.put([2], [])
            try store.write(batch, durable: true)
            #expect(try store.get([1]) == [10])
            #expect(try store.get([2]) == [])
            var deletion = WriteBatch()
            deletion.delete([1])
            try store.write(deletion, durable: false)
            #expect(try store.get([1]) == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func batchesApplyInOrder(_ backend: Backend) throws {
        try withStore(backend) { store in
            var batch = WriteBatch()
            batch.put([7], [1])
            batch.delete([7])
            batch.put([8], [1])
            batch.put([8], [2])
            try store.write(batch, durable: true)
            #expect(try store.get([7]) == nil)
            #expect(try store.get([8]) == [2])
        }
    }

    /// Random batches over a few keys, with repeated and interleaved keys, end in RocksDB
    /// as they end in the memory store.
    @Test func rocksdbAppliesRandomBatchesAsTheMemoryStoreDoes() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let rocks = try RocksDBStore(path: path)
        let memory = MemoryStore()
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ bound: UInt64) -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state % bound
        }
        // Some under the prefixes of the ordered column families (b, s).
        let keys: [[UInt8]] = [[1], [1, 0], [2], [0xff], [1, 0, 0], [0x80, 1], [0x62, 1], [0x62, 2], [0x63], [0x73, 0, 1], [0x73, 9], [0x76, 1]]
        for _ in 0..<50 {
            var batch = WriteBatch()
            for _ in 0..<Int(1 + next(20)) {
                let key = keys[Int(next(UInt64(keys.count)))]
                if next(3) == 0 { batch.delete(key) } else { batch.put(key, [UInt8(truncatingIfNeeded: next(256))]) }
            }
            try rocks.write(batch, durable: false)
            try memory.write(batch, durable: false)
            for key in keys { #expect(try rocks.get(key) == memory.get(key)) }
            for prefix: [UInt8] in [[0x62], [0x73], [1], []] {
                let start: [UInt8]? = next(2) == 0 ? nil : [UInt8(truncatingIfNeeded: next(256))]
                let limit = Int(1 + next(8))
                let fromRocks = try rocks.scan(prefix: prefix, start: start, limit: limit)
                let fromMemory = try memory.scan(prefix: prefix, start: start, limit: limit)
                #expect(fromRocks.map(\.key) == fromMemory.map(\.key) && fromRocks.map(\.value) == fromMemory.map(\.value))
            }
        }
    }

    /// A store written before the column families existed holds every key in the default
    /// family: opened, its blocks, tree nodes and state values move to their own, the
    /// values over several pages of the move.
    @Test func keysInTheDefaultFamilyMoveToTheirsOnOpen() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var values: [([UInt8], [UInt8])] = []
        for index in 0..<25_000 {
            let key: [UInt8] = [0x76, 8, UInt8(index >> 8), UInt8(index & 0xff)]
            values.append((key, [UInt8(index % 251)]))
        }
        let others: [([UInt8], [UInt8])] = [([0x62, 0, 1], [1]), ([0x63, 0, 1], [2]), ([0x73, 5, 5], [3]), ([0x76, 7], [4]), ([0x6e, 1], [5])]
        let entries = others + values
        let options = rocksdb_options_create()
        defer { rocksdb_options_destroy(options) }
        rocksdb_options_set_create_if_missing(options, 1)
        var error: UnsafeMutablePointer<CChar>?
        let raw = try #require(rocksdb_open(options, path, &error))
        let write = rocksdb_writeoptions_create()
        for (key, value) in entries {
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    k.withMemoryRebound(to: CChar.self) { k in
                        v.withMemoryRebound(to: CChar.self) { v in
                            rocksdb_put(raw, write, k.baseAddress, k.count, v.baseAddress, v.count, &error)
                        }
                    }
                }
            }
        }
        rocksdb_writeoptions_destroy(write)
        rocksdb_close(raw)
        #expect(error == nil)
        for round in 0..<2 {
            var moves: [RocksDBStore.FamilyMove] = []
            let store = try RocksDBStore(path: path) { moves.append($0) }
            // The first open moves each family's keys, reporting the start and the count;
            // the second finds nothing to move.
            let expected: [(String, Int)] = [("blocks", 1), ("state-nodes", 1), ("state-values", 25_001)]
            let reported = expected.flatMap { name, count in
                [RocksDBStore.FamilyMove(from: "default", into: name, moved: nil), .init(from: "default", into: name, moved: count)]
            }
            #expect(moves == (round == 0 ? reported : []))
            for (key, value) in entries { #expect(try store.get(key) == value) }
            #expect(try store.scan(prefix: [0x73], start: nil, limit: 10).map(\.value) == [[3]])
            #expect(try store.scan(prefix: [0x76, 7], start: nil, limit: 10).map(\.value) == [[4]])
            let moved = try store.scan(prefix: [0x76, 8], start: nil, limit: 30_000)
            #expect(moved.map(\.key) == values.map(\.0) && moved.map(\.value) == values.map(\.1))
            let sorted = entries.map(\.0).sorted { $0.lexicographicallyPrecedes($1) }
            #expect(try store.scan(prefix: [], start: nil, limit: 10).map(\.key) == Array(sorted.prefix(10)))
            store.close()
        }
    }

    /// A family an earlier release made and this one does not use (here `certificates`,
    /// briefly one of the families) is emptied into the families its keys now
    /// belong to and dropped when the store opens.
    @Test func anUnusedColumnFamilyIsEmptiedAndDropped() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let options = rocksdb_options_create()
        defer { rocksdb_options_destroy(options) }
        rocksdb_options_set_create_if_missing(options, 1)
        var error: UnsafeMutablePointer<CChar>?
        let raw = try #require(rocksdb_open(options, path, &error))
        let family = try #require(rocksdb_create_column_family(raw, options, "certificates", &error))
        let write = rocksdb_writeoptions_create()
        let entries: [([UInt8], [UInt8])] = [([0x63, 0, 1], [1]), ([0x63, 0, 2], [2]), ([0x73, 1], [3])]
        for (key, value) in entries {
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    k.withMemoryRebound(to: CChar.self) { k in
                        v.withMemoryRebound(to: CChar.self) { v in
                            rocksdb_put_cf(raw, write, family, k.baseAddress, k.count, v.baseAddress, v.count, &error)
                        }
                    }
                }
            }
        }
        rocksdb_writeoptions_destroy(write)
        rocksdb_column_family_handle_destroy(family)
        rocksdb_close(raw)
        #expect(error == nil)
        var moves: [RocksDBStore.FamilyMove] = []
        let store = try RocksDBStore(path: path) { moves.append($0) }
        #expect(moves.map(\.from) == ["certificates", "certificates"] && moves.map(\.moved) == [nil, 3])
        for (key, value) in entries { #expect(try store.get(key) == value) }
        #expect(try store.scan(prefix: [0x63], start: nil, limit: 10).count == 2)
        store.close()
        var count = 0
        let list = try #require(rocksdb_list_column_families(options, path, &count, &error))
        let names = (0..<count).map { String(cString: list[$0]!) }
        rocksdb_list_column_families_destroy(list, count)
        #expect(Set(names) == Set(["default"] + RocksDBStore.families.map(\.name)))
        let reopened = try RocksDBStore(path: path)
        for (key, value) in entries { #expect(try reopened.get(key) == value) }
        reopened.close()
    }

    /// Writes left unsynced are synced by `sync` and found again by a store reopened on the
    /// same directory; a closed store refuses to sync.
    @Test func syncMakesEarlierWritesDurable() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RocksDBStore(path: path)
        for index in 0..<3 {
            var batch = WriteBatch()
            batch.put([0x61, UInt8(index)], [UInt8(index)])
            try store.write(batch, durable: false)
        }
        try store.sync()
        store.close()
        #expect(throws: StorageError.self) { try store.sync() }
        let reopened = try RocksDBStore(path: path)
        defer { reopened.close() }
        #expect(try reopened.scan(prefix: [0x61], limit: 10).map(\.value) == [[0], [1], [2]])
    }

    /// Where the filesystem takes O_DIRECT, flushes write around the page cache: the
    /// options say so, and what a reopened store flushed from its WAL (RocksDB writes the
    /// recovered memtable to a table file) reads back whole from every family.
    @Test func flushesWriteAroundThePageCacheAndReadBack() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RocksDBStore(path: path)
        #expect(store.directWrites == RocksDBStore.directWritesWork(at: path))
        var batch = WriteBatch()
        let prefixes: [StorePrefix] = [.stateNode, .block, .stateValue]
        for index in 0..<3_000 {
            for prefix in prefixes {
                batch.put(prefix.key([UInt8(index >> 8), UInt8(index & 0xFF)]), [UInt8](repeating: UInt8(index & 0xFF), count: 300))
            }
        }
        try store.write(batch, durable: true)
        store.close()
        try RocksDBStore(path: path).close()
        let tables = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".sst") }
        #expect(!tables.isEmpty)
        let options = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix("OPTIONS-") }.sorted()
        let text = try String(contentsOfFile: "\(path)/\(try #require(options.last))", encoding: .utf8)
        #expect(text.contains("use_direct_io_for_flush_and_compaction=\(store.directWrites)"))
        let reopened = try RocksDBStore(path: path)
        defer { reopened.close() }
        for prefix in prefixes {
            let entries = try reopened.scan(prefix: [prefix.rawValue], limit: 5_000)
            #expect(entries.count == 3_000, "\(prefix)")
            #expect(entries.allSatisfy { $0.value == [UInt8](repeating: $0.key.last!, count: 300) }, "\(prefix)")
        }
    }

    /// A store reports its level-0 files (a reopened store flushed what its WAL held, a
    /// file per family written), nothing pending while each level is within its target,
    /// and zeros once closed; a store without background work reports none, and the value
    /// cache reports its base's.
    @Test func aStoreReportsTheBackgroundWorkItOwes() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let idle = StoreBacklog(pendingCompactionBytes: 0, level0Files: 0, runningCompactions: 0, runningFlushes: 0)
        let store = try RocksDBStore(path: path)
        #expect(store.backlog == idle)
        var batch = WriteBatch()
        let prefixes: [StorePrefix] = [.stateNode, .block, .stateValue]
        for index in 0..<1_000 {
            for prefix in prefixes { batch.put(prefix.key([UInt8(index >> 8), UInt8(index & 0xFF)]), [UInt8](repeating: 1, count: 100)) }
        }
        try store.write(batch, durable: true)
        #expect(store.backlog?.level0Files == 0)
        store.close()
        let reopened = try RocksDBStore(path: path)
        let backlog = try #require(reopened.backlog)
        #expect(backlog.level0Files == prefixes.count)
        // Read through the same integer properties: the uncompressed families' files hold
        // 200 KB of values (the blocks family compresses its runs of ones to little).
        #expect(reopened.approximateDiskBytes > 200_000)
        #expect(backlog.pendingCompactionBytes == 0)
        #expect(backlog.isSettled)
        #expect(ValueCachingStore(base: reopened, prefix: .stateValue).backlog == backlog)
        reopened.close()
        #expect(reopened.backlog == idle)
        #expect(MemoryStore().backlog == nil)
    }

    /// Settled means nothing owed and nothing running; level-0 files below the trigger are
    /// no debt.
    @Test func aBacklogIsSettledOnlyWithNothingOwedOrRunning() {
        #expect(StoreBacklog(pendingCompactionBytes: 0, level0Files: 7, runningCompactions: 0, runningFlushes: 0).isSettled)
        #expect(!StoreBacklog(pendingCompactionBytes: 1, level0Files: 0, runningCompactions: 0, runningFlushes: 0).isSettled)
        #expect(!StoreBacklog(pendingCompactionBytes: 0, level0Files: 0, runningCompactions: 1, runningFlushes: 0).isSettled)
        #expect(!StoreBacklog(pendingCompactionBytes: 0, level0Files: 0, runningCompactions: 0, runningFlushes: 1).isSettled)
    }

    /// The probe finds O_DIRECT on this machine's temporary directory and refuses where no
    /// file can be created.
    @Test func theDirectWriteProbeAnswersForTheFilesystem() {
        #expect(RocksDBStore.directWritesWork(at: NSTemporaryDirectory() + "not-yet-\(UUID().uuidString)"))
        #expect(!RocksDBStore.directWritesWork(at: "/proc/civitas-\(UUID().uuidString)"))
    }

    /// Tree nodes (hashes) and state values are stored uncompressed, blocks and receipts
    /// (written in key order) compressed from the flush on, the default family below level
    /// 1, and the memtable size is drawn from its range: read back from the options file
    /// RocksDB writes for the store it opened.
    @Test func eachFamilyIsCompressedAsItsKeysArrive() throws {
        let families = try Self.familyOptions()
        for name in ["state-nodes", "state-values"] {
            #expect(families[name]?["compression"] == "kNoCompression", "\(name)")
            #expect(families[name]?["compression_per_level"] ?? "" == "", "\(name)")
        }
        // A file of the ordered families moves down as it is only if every level compresses
        // alike.
        for name in ["blocks", "receipts"] {
            #expect(families[name]?["compression"] == "kSnappyCompression", "\(name)")
            #expect(families[name]?["compression_per_level"] ?? "" == "", "\(name)")
        }
        let levels = try #require(families["default"]?["compression_per_level"]).split(separator: ":")
        #expect(levels.count == 7, "default: \(levels)")
        #expect(levels.prefix(2).allSatisfy { $0 == "kNoCompression" }, "default: \(levels)")
        #expect(levels.dropFirst(2).allSatisfy { $0 == "kSnappyCompression" }, "default: \(levels)")
        let memtable = families["default"]?["write_buffer_size"].flatMap { Int($0) }
        #expect(memtable.map(RocksDBStore.memtableBytes.contains) == true, "write_buffer_size \(String(describing: memtable))")
    }

    /// The default family, where keys arrive at random, compacts level 0 eight files at a
    /// time into a level 1 sized for them.
    @Test func randomKeysCompactEightLevel0FilesAtATime() throws {
        let options = try #require(try Self.familyOptions()["default"])
        #expect(options["level0_file_num_compaction_trigger"] == "\(RocksDBStore.level0FilesPerCompaction)")
        #expect(options["level0_file_num_compaction_trigger"] == "8")
        #expect(options["max_bytes_for_level_base"] == "\(512 << 20)")
        #expect(options["level0_slowdown_writes_trigger"].flatMap { Int($0) }.map { $0 > 8 } == true)
    }

    /// Each column family's options as a new store's OPTIONS file records them.
    private static func familyOptions() throws -> [String: [String: String]] {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RocksDBStore(path: path)
        store.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix("OPTIONS-") }.sorted()
        let text = try String(contentsOfFile: "\(path)/\(try #require(files.last))", encoding: .utf8)
        var families: [String: [String: String]] = [:]
        var family: String?
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("[") {
                family = line.hasPrefix("[CFOptions \"") ? String(line.dropFirst(12).dropLast(2)) : nil
            } else if let family, let equals = line.firstIndex(of: "=") {
                families[family, default: [:]][String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
        }
        return families
    }

    /// RocksDB's flush and compaction threads in the process run at nice 19 once a store
    /// is open: a database opened beside it through the raw API, flushed, has its flush
    /// thread lowered too (the threads are the process's).
    @Test func backgroundThreadsRunAtTheLowestPriority() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        let other = path + "-raw"
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: other)
        }
        let store = try RocksDBStore(path: path)
        defer { store.close() }
        let options = rocksdb_options_create()
        defer { rocksdb_options_destroy(options) }
        rocksdb_options_set_create_if_missing(options, 1)
        var error: UnsafeMutablePointer<CChar>?
        let raw = try #require(rocksdb_open(options, other, &error))
        defer { rocksdb_close(raw) }
        let write = rocksdb_writeoptions_create()
        rocksdb_put(raw, write, "k", 1, "v", 1, &error)
        rocksdb_writeoptions_destroy(write)
        let flush = rocksdb_flushoptions_create()
        rocksdb_flushoptions_set_wait(flush, 1)
        rocksdb_flush(raw, flush, &error)
        rocksdb_flushoptions_destroy(flush)
        #expect(error == nil)
        // A thread lowers its priority before the job it runs: the flush ran on one.
        var niceness: [String: Set<Int>] = [:]
        for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { continue }
            let name = comm.trimmingCharacters(in: .whitespacesAndNewlines)
            // Fields after the command name: state is field 3, nice field 19.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            if name.hasPrefix("rocksdb:"), fields.count > 16, let nice = Int(fields[16]) { niceness[name, default: []].insert(nice) }
        }
        #expect(niceness["rocksdb:high"]?.contains(19) == true, "\(niceness)")
    }

    /// RocksDB receives a batch in key order; a key's own operations keep their order,
    /// since the last of them is the one that holds.
    @Test func batchesGoToRocksDBInKeyOrderWithEachKeysOperationsInTheirOrder() {
        var batch = WriteBatch()
        batch.put([2, 1], [1])
        batch.delete([1])
        batch.put([], [9])
        batch.put([2], [2])
        batch.put([1], [3])
        batch.put([2, 1], [4])
        batch.delete([2, 1])
        #expect(RocksDBStore.keyOrder(batch.operations) == [2, 1, 4, 3, 0, 5, 6])
        // Keys alike in their first eight bytes, and a key that is another's prefix.
        let long: [[UInt8]] = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 1], [1, 2, 3, 4, 5, 6, 7, 8, 0, 0]]
        var alike = WriteBatch()
        for key in long { alike.put(key, []) }
        #expect(RocksDBStore.keyOrder(alike.operations).map { long[$0] } == long.sorted { $0.lexicographicallyPrecedes($1) })
        // Keys alike in their first sixteen bytes, as a block's tree nodes nearly are.
        let longer: [[UInt8]] = [Array(repeating: 7, count: 16) + [2], Array(repeating: 7, count: 16) + [1], Array(repeating: 7, count: 16)]
        var alikeLonger = WriteBatch()
        for key in longer { alikeLonger.put(key, []) }
        #expect(RocksDBStore.keyOrder(alikeLonger.operations).map { longer[$0] } == longer.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(RocksDBStore.keyOrder([]).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func scanIsOrderedBoundedAndPrefixed(_ backend: Backend) throws {
        try withStore(backend) { store in
            var batch = WriteBatch()
            for byte: UInt8 in [5, 3, 9, 1] { batch.put([0x61, byte], [byte]) }
            batch.put([0x62, 0], [0])
            batch.put([0x60, 0xff], [0])
            try store.write(batch, durable: true)
            let all = try store.scan(prefix: [0x61], limit: 10)
            #expect(all.map(\.key) == [[0x61, 1], [0x61, 3], [0x61, 5], [0x61, 9]])
            #expect(try store.scan(prefix: [0x61], limit: 2).count == 2)
            #expect(try store.scan(prefix: [0x61], start: [0x61, 4], limit: 10).map(\.value) == [[5], [9]])
            #expect(try store.scan(prefix: [0x63], limit: 10).isEmpty)
        }
    }

    /// Layers read as if written in order, and a scan through them equals the scan of a
    /// store where the same batches were really written.
    @Test(arguments: Backend.allCases)
    func overlayReadsAsIfTheLayersWereWritten(_ backend: Backend) throws {
        // Under an ordinary prefix and under the tree nodes' (indexed apart, when first read).
        for top in [UInt8(7), StorePrefix.stateNode.rawValue] {
            try withStore(backend) { store in
                var base = WriteBatch()
                for key in UInt8(0)..<20 { base.put([top, key], [key]) }
                base.put([8, 0], [0])
                try store.write(base, durable: false)
                var first = WriteBatch()
                first.delete([top, 3])
                first.put([top, 4], [44])
                first.put([top, 30], [30])
                first.put([9, 1], [91])
                var second = WriteBatch()
                second.put([top, 3], [33])
                second.delete([top, 5])
                second.delete([top, 4])
                let overlay = OverlayStore(base: store, layers: [first, second])
                #expect(try overlay.get([top, 3]) == [33])
                #expect(try overlay.get([top, 4]) == nil)
                #expect(try overlay.get([top, 6]) == [6])
                #expect(try overlay.get([9, 1]) == [91])

                let expected = MemoryStore()
                try expected.write(base, durable: false)
                try expected.write(first, durable: false)
                try expected.write(second, durable: false)
                for (prefix, start, limit) in [
                    ([top], nil, 100), ([top], nil, 3), ([top], [top, 4] as [UInt8]?, 4), ([top], [top, 19], 10), ([], nil, 100),
                ] {
                    let seen = try overlay.scan(prefix: prefix, start: start, limit: limit).map { [$0.key, $0.value] }
                    let truth = try expected.scan(prefix: prefix, start: start, limit: limit).map { [$0.key, $0.value] }
                    #expect(seen == truth, "prefix \(prefix), start \(String(describing: start)), limit \(limit)")
                }
                // The base is untouched.
                #expect(try store.get([top, 4]) == [4])
            }
        }
    }

    /// `getMany` answers as `get` of each key would, in the keys' order, read in turn
    /// (few keys) or by the store's readers together (many), across the column families.
    @Test(arguments: Backend.allCases)
    func getManyAnswersAsGetOfEachKey(_ backend: Backend) throws {
        try withStore(backend) { store in
            var batch = WriteBatch()
            let prefixes: [UInt8] = [StorePrefix.stateNode.rawValue, StorePrefix.block.rawValue, 7]
            for prefix in prefixes {
                for key in 0..<400 where key % 3 != 0 { batch.put([prefix, UInt8(key >> 8), UInt8(key & 0xff)], [prefix, UInt8(key & 0xff)]) }
            }
            try store.write(batch, durable: false)
            for count in [0, 1, 5, 1_200] {
                let keys = (0..<count).map { index -> [UInt8] in
                    let key = (index * 7_919) % 400
                    return [prefixes[index % 3], UInt8(key >> 8), UInt8(key & 0xff)]
                }
                let many = try store.getMany(keys)
                #expect(many == (try keys.map { try store.get($0) }), "\(count) keys")
                #expect(many.count == count && (count < 3 || many.contains(nil)))
            }
        }
    }

    /// An overlay answers `getMany` from its layers first, then the base for the rest,
    /// in the keys' order.
    @Test(arguments: Backend.allCases)
    func overlayGetManyReadsTheLayersThenTheBase(_ backend: Backend) throws {
        try withStore(backend) { store in
            let node = StorePrefix.stateNode.rawValue
            var base = WriteBatch()
            for key in UInt8(0)..<40 {
                base.put([node, key], [key])
                base.put([7, key], [key])
            }
            try store.write(base, durable: false)
            var layer = WriteBatch()
            layer.put([node, 3], [33])
            layer.delete([node, 4])
            layer.put([7, 5], [55])
            layer.put([7, 50], [50])
            let overlay = OverlayStore(base: store, layers: [layer])
            let keys: [[UInt8]] = (0..<60).map { [$0 % 2 == 0 ? node : 7, UInt8($0)] }
            #expect(try overlay.getMany(keys) == (try keys.map { try overlay.get($0) }))
            #expect(try overlay.getMany([[node, 3], [node, 4], [7, 5], [7, 50], [7, 51]]) == [[33], nil, [55], [50], nil])
        }
    }

    @Test func rocksdbDurableWritesSurviveReopening() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let store = try RocksDBStore(path: path)
            var batch = WriteBatch()
            batch.put(Array("height".utf8), [0, 0, 0, 9])
            try store.write(batch, durable: true)
        }
        let reopened = try RocksDBStore(path: path)
        #expect(try reopened.get(Array("height".utf8)) == [0, 0, 0, 9])
    }

    /// A closed store releases its directory at once (another handle opens it while the
    /// first still exists) and refuses further use with a typed error, not a crash.
    @Test func aClosedRocksDBStoreReleasesItsDirectoryAndRefusesUse() throws {
        let path = NSTemporaryDirectory() + "civitas-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RocksDBStore(path: path)
        var batch = WriteBatch()
        batch.put([1], [2])
        try store.write(batch, durable: true)
        #expect(throws: StorageError.self) { try RocksDBStore(path: path) }
        store.close()
        store.close()
        let reopened = try RocksDBStore(path: path)
        #expect(try reopened.get([1]) == [2])
        func isClosed(_ error: any Error) -> Bool { (error as? StorageError)?.code == .closed }
        #expect(performing: { try store.get([1]) }, throws: isClosed)
        #expect(performing: { try store.getMany([[UInt8]](repeating: [1], count: 2)) }, throws: isClosed)
        #expect(performing: { try store.getMany([[UInt8]](repeating: [1], count: 100)) }, throws: isClosed)
        #expect(performing: { try store.write(batch, durable: true) }, throws: isClosed)
        #expect(performing: { try store.scan(prefix: [], start: nil, limit: 1) }, throws: isClosed)
        #expect(store.approximateDiskBytes == 0)
    }

    @Test func rocksdbRefusesAnUnopenablePath() {
        #expect(throws: StorageError.self) { try RocksDBStore(path: "/proc/civitas-cannot-exist/db") }
    }
}
