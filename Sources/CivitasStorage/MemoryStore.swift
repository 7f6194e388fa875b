import Synchronization

/// A store in memory, for tests and deterministic simulation. `write(durable:)` is
/// atomic like RocksDB's; durability is moot.
public final class MemoryStore: KeyValueStore {
    private let entries = Mutex<[[UInt8]: [UInt8]]>([:])

    public init() {}

    public func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        entries.withLock { $0[key] }
    }

    public func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) {
        entries.withLock { entries in
            for operation in batch.operations {
                switch operation {
                case .put(let key, let value): entries[key] = value
                case .delete(let key): entries[key] = nil
                }
            }
        }
    }

    public func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        let lower = start ?? prefix
        return entries.withLock { entries in
            entries.filter { $0.key.starts(with: prefix) && !$0.key.lexicographicallyPrecedes(lower) }
                .sorted { $0.key.lexicographicallyPrecedes($1.key) }
                .prefix(limit)
                .map { (key: $0.key, value: $0.value) }
        }
    }

    /// Number of entries and bytes held, for tests that check what a write cost.
    public var footprint: (entries: Int, bytes: Int) {
        entries.withLock { entries in
            (entries.count, entries.reduce(0) { $0 + $1.key.count + $1.value.count })
        }
    }
}
