import CivitasStorage
import Synchronization

/// A store in memory that loses, in a simulated crash, what was written but not yet
/// synced, as a node's disk would: batches written without `durable` stay pending until a
/// durable write or a `sync` (RocksDB syncs its log in order, so either makes every
/// earlier batch durable).
public final class CrashableStore: KeyValueStore {
    private let live = MemoryStore()
    private let synced = MemoryStore()
    private let pending = Mutex<[WriteBatch]>([])

    public init() {}

    public func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? { try live.get(key) }

    public func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try live.scan(prefix: prefix, start: start, limit: limit)
    }

    public func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) {
        try live.write(batch, durable: false)
        pending.withLock { $0.append(batch) }
        if durable { try sync() }
    }

    public func sync() throws(StorageError) {
        for batch in pending.withLock({ pending in defer { pending = [] }; return pending }) {
            try synced.write(batch, durable: false)
        }
    }

    /// Whether `key` holds the same value (or absence) on the disk as in what reads see.
    public func isSynced(_ key: [UInt8]) -> Bool {
        (try? live.get(key)) == (try? synced.get(key))
    }

    /// The store as a restarted node finds it: what was synced, nothing else.
    public func afterCrash() throws(StorageError) -> CrashableStore {
        let restarted = CrashableStore()
        var batch = WriteBatch()
        for entry in try synced.scan(prefix: [], start: nil, limit: .max) { batch.put(entry.key, entry.value) }
        try restarted.write(batch, durable: true)
        return restarted
    }
}
