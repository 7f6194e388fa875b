/// A read view of a store with write batches laid over it, oldest first, as if they
/// had been written. Blocks executed but not yet committed are read through one: a
/// child block executes on its parent's state before either reaches the disk.
///
/// Writing through the view is a programming error: it would bypass the commit that
/// makes a block and its state durable together.
public final class OverlayStore: KeyValueStore {
    private let base: any KeyValueStore
    private let entries: [ByteKey: [UInt8]?]

    /// A key hashed as one block of bytes: `[UInt8]`'s own hashing feeds the hasher a
    /// byte at a time, which made building a view of a few blocks' writes slow.
    struct ByteKey: Hashable {
        let bytes: [UInt8]
        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

    public init(base: any KeyValueStore, layers: [WriteBatch]) {
        self.base = base
        var entries: [ByteKey: [UInt8]?] = [:]
        entries.reserveCapacity(layers.reduce(0) { $0 + $1.operations.count })
        for layer in layers {
            for operation in layer.operations {
                switch operation {
                case .put(let key, let value): entries[ByteKey(bytes: key)] = .some(value)
                case .delete(let key): entries[ByteKey(bytes: key)] = .some(nil)
                }
            }
        }
        self.entries = entries
    }

    public func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        if let layered = entries[ByteKey(bytes: key)] { return layered }
        return try base.get(key)
    }

    public func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) {
        preconditionFailure("OverlayStore is a read view; commit through the base store")
    }

    public func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        let from = start ?? prefix
        let layered = entries.filter { $0.key.bytes.starts(with: prefix) && !$0.key.bytes.lexicographicallyPrecedes(from) }
        // Enough base entries to fill `limit` even if every layered key shadows one.
        var merged: [[UInt8]: [UInt8]] = [:]
        for entry in try base.scan(prefix: prefix, start: start, limit: limit + layered.count) { merged[entry.key] = entry.value }
        for (key, value) in layered { merged[key.bytes] = value }
        return merged.sorted { $0.key.lexicographicallyPrecedes($1.key) }.prefix(limit).map { (key: $0.key, value: $0.value) }
    }
}
