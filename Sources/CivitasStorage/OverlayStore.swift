import CivitasCore
import Synchronization

/// A read view of a store with write batches laid over it, oldest first, as if they
/// had been written. Blocks executed but not yet committed are read through one: a
/// child block executes on its parent's state before either reaches the disk.
///
/// Writing through the view is a programming error: it would bypass the commit that
/// makes a block and its state durable together.
public final class OverlayStore: KeyValueStore {
    private let base: any KeyValueStore
    /// The layers' entries but tree nodes.
    private let entries: [ByteKey: [UInt8]?]
    private let layers: [WriteBatch]
    /// The layers' tree nodes, indexed when first asked for. The tree reads nodes through
    /// its cache, so most views never ask, and indexing a block's nodes with the rest cost
    /// 6 µs of the machine per transaction with 1M keys in state (docs/benchmarks.md).
    private let nodeEntries = Mutex<[ByteKey: [UInt8]?]?>(nil)

    public init(base: any KeyValueStore, layers: [WriteBatch]) {
        self.base = base
        self.layers = layers
        entries = Self.index(layers) { !Self.isNode($0) }
    }

    private static func isNode(_ key: [UInt8]) -> Bool { key.first == StorePrefix.stateNode.rawValue }

    /// The last operation of the layers on each key that `include` accepts.
    private static func index(_ layers: [WriteBatch], _ include: ([UInt8]) -> Bool) -> [ByteKey: [UInt8]?] {
        var entries: [ByteKey: [UInt8]?] = [:]
        // Sized for the keys taken, not every operation: most of a block's are tree nodes.
        var taken = 0
        for layer in layers {
            for operation in layer.operations {
                switch operation {
                case .put(let key, _), .delete(let key): if include(key) { taken += 1 }
                }
            }
        }
        entries.reserveCapacity(taken)
        for layer in layers {
            for operation in layer.operations {
                switch operation {
                case .put(let key, let value) where include(key): entries[ByteKey(key)] = .some(value)
                case .delete(let key) where include(key): entries[ByteKey(key)] = .some(nil)
                default: continue
                }
            }
        }
        return entries
    }

    private func nodes() -> [ByteKey: [UInt8]?] {
        nodeEntries.withLock { indexed in
            if let indexed { return indexed }
            let built = Self.index(layers, Self.isNode)
            indexed = built
            return built
        }
    }

    public func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        if let layered = (Self.isNode(key) ? nodes() : entries)[ByteKey(key)] { return layered }
        return try base.get(key)
    }

    public func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] {
        var values = [[UInt8]?](repeating: nil, count: keys.count)
        var unlayered: [Int] = []
        // The node index once for all the keys, not under its lock per key.
        let nodeEntries = keys.contains(where: Self.isNode) ? nodes() : [:]
        for (position, key) in keys.enumerated() {
            if let layered = (Self.isNode(key) ? nodeEntries : entries)[ByteKey(key)] {
                values[position] = layered
            } else {
                unlayered.append(position)
            }
        }
        for (position, value) in zip(unlayered, try base.getMany(unlayered.map { keys[$0] })) { values[position] = value }
        return values
    }

    public func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) {
        preconditionFailure("OverlayStore is a read view; commit through the base store")
    }

    public func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        let from = start ?? prefix
        let reachesNodes = prefix.isEmpty || Self.isNode(prefix)
        let layered = (reachesNodes ? entries.merging(nodes()) { $1 } : entries)
            .filter { $0.key.bytes.starts(with: prefix) && !$0.key.bytes.lexicographicallyPrecedes(from) }
        // Enough base entries to fill `limit` even if every layered key shadows one.
        var merged: [[UInt8]: [UInt8]] = [:]
        for entry in try base.scan(prefix: prefix, start: start, limit: limit + layered.count) { merged[entry.key] = entry.value }
        for (key, value) in layered { merged[key.bytes] = value }
        return merged.sorted { $0.key.lexicographicallyPrecedes($1.key) }.prefix(limit).map { (key: $0.key, value: $0.value) }
    }
}
