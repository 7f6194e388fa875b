import CivitasCore
import Synchronization

/// A store that keeps recently read and written values of one key prefix in memory.
///
/// Every transaction reads its sender's organisation and nonce, at admission on every
/// validator and again at execution; a profile showed those reads at RocksDB as a tenth
/// of a validator's time. Writes pass through and update the entries held, so a read
/// here always returns what the base store holds once `write` has returned.
///
/// Bounded by entries and by bytes: two generations, the older dropped when the younger
/// fills; values above `valueBytesMax` are not kept.
public final class ValueCachingStore: KeyValueStore {
    public let base: any KeyValueStore
    private let prefix: UInt8
    private let entriesMax: Int
    private let bytesMax: Int
    private let valueBytesMax: Int

    private struct Generations {
        var young: [ByteKey: [UInt8]?] = [:]
        var youngBytes = 0
        var old: [ByteKey: [UInt8]?] = [:]
        /// Moves on with every write, so a read of the base that a write overtook is not
        /// cached with its older value.
        var writes: UInt64 = 0
    }

    private let generations = Mutex(Generations())

    /// `entriesMax` and `bytesMax` bound each of the two generations.
    public init(
        base: any KeyValueStore, prefix: StorePrefix, entriesMax: Int = 100_000, bytesMax: Int = 16 << 20, valueBytesMax: Int = 1_024
    ) {
        precondition(entriesMax > 0 && bytesMax > 0)
        self.base = base
        self.prefix = prefix.rawValue
        self.entriesMax = entriesMax
        self.bytesMax = bytesMax
        self.valueBytesMax = valueBytesMax
    }

    public func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        guard key.first == prefix else { return try base.get(key) }
        let held = ByteKey(key)
        let lookup: (hit: [UInt8]??, writes: UInt64) = generations.withLock { state in
            if let value = state.young[held] { return (value, state.writes) }
            if let value = state.old.removeValue(forKey: held) {
                insert(held, value, into: &state)
                return (value, state.writes)
            }
            return (nil, state.writes)
        }
        if let hit = lookup.hit { return hit }
        let value = try base.get(key)
        generations.withLock { state in
            if state.writes == lookup.writes { insert(held, value, into: &state) }
        }
        return value
    }

    /// Keys of other prefixes go to the base together; this prefix's go through the cache.
    public func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] {
        guard keys.contains(where: { $0.first == prefix }) else { return try base.getMany(keys) }
        return try getEach(keys)
    }

    public func sync() throws(StorageError) { try base.sync() }

    public var backlog: StoreBacklog? { base.backlog }

    public func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) {
        try generations.withLock { (state) throws(StorageError) in
            // Under the lock: no read may see the base's new value and then cache an old one.
            try base.write(batch, durable: durable)
            state.writes &+= 1
            for operation in batch.operations {
                switch operation {
                case .put(let key, let value) where key.first == prefix:
                    refresh(ByteKey(key), value, in: &state)
                case .delete(let key) where key.first == prefix:
                    refresh(ByteKey(key), nil, in: &state)
                default:
                    break
                }
            }
        }
    }

    public func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try base.scan(prefix: prefix, start: start, limit: limit)
    }

    /// Entries held now, in both generations.
    public var count: Int { generations.withLock { $0.young.count + $0.old.count } }

    /// A written key's entry takes the new value if one is held; a key nobody read is not
    /// added. Blocks write keys that are rarely read again (a `kv` put never reads), and
    /// with a large state every such write was a new entry: the young generation filled
    /// every few dozen blocks and dropped the senders' entries with everything else.
    private func refresh(_ key: ByteKey, _ value: [UInt8]?, in state: inout Generations) {
        // The common case, a sender's nonce read at admission: updated where it lies.
        if let index = state.young.index(forKey: key), (value?.count ?? 0) <= valueBytesMax {
            state.young.values[index] = value
            return
        }
        if state.young.index(forKey: key) != nil || state.old.index(forKey: key) != nil { insert(key, value, into: &state) }
    }

    private func insert(_ key: ByteKey, _ value: [UInt8]?, into state: inout Generations) {
        let size = key.bytes.count + (value?.count ?? 0)
        guard (value?.count ?? 0) <= valueBytesMax else {
            // Too large to keep: forget any older value so no read returns it.
            state.young[key] = nil
            state.old[key] = nil
            return
        }
        if state.young.count >= entriesMax || state.youngBytes + size > bytesMax {
            state.old = state.young
            state.young = [:]
            state.youngBytes = 0
        }
        state.old[key] = nil
        if state.young.updateValue(value, forKey: key) == nil { state.youngBytes += size }
    }
}
