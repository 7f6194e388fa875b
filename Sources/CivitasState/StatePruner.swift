import CivitasCore
import CivitasStorage
import Synchronization

/// Deletes the state-tree nodes that no kept state names (ADR 0013).
///
/// Every block's batch lists the stored nodes its update replaced under its height
/// (`StateTree.staleKey`). A node listed under height `s` is named by the states of
/// heights below `s` only, so once the entries of every height up to `t` are pruned, the
/// states of heights `t` and later are still whole and the older ones are not: `t` is the
/// oldest kept height. The node keeps `keptHeights` heights below its committed one, and
/// any height `hold` asks for (a snapshot being served).
///
/// Pruning deletes, in pages, each listed node and its entry; a page is one batch, and a
/// crash between pages repeats at most a page (a deletion of what is gone changes
/// nothing). The oldest kept height is recorded in the first page of a round and raised
/// in memory before any node goes, so that a read never begins on a state being pruned.
/// Root-index entries (`r`) stay: 42 bytes per block, beside blocks that are kept too, and
/// a root that comes back later shares its entry with the older one.
public final class StatePruner: Sendable {
    /// Every state is kept unless an operator asks otherwise: deleting single nodes from
    /// the version-ordered `state-nodes` family costs compactions that rewrite its deep
    /// levels (ADR 0013, docs/benchmarks.md, session 19).
    public static let keptHeightsDefault: UInt64 = 0
    /// Below this a block's own execution could outrun the state it reads.
    public static let keptHeightsMin: UInt64 = 16
    public static let pageEntries = 10_000

    private let store: any KeyValueStore
    private let cache: StateNodeCache?
    /// Zero keeps every state (an archive node): nothing is pruned.
    public let keptHeights: UInt64
    private let oldest: Atomic<UInt64>
    private let target: Atomic<UInt64>
    private let progress: Mutex<Progress>
    /// Tree nodes deleted since the node started.
    public let prunedNodes = Atomic<Int>(0)

    private struct Progress {
        /// Every entry of a height up to this is pruned.
        var done: UInt64
        /// The oldest kept height the store records.
        var recorded: UInt64
        /// Where the next page starts: entries before it are pruned, their tombstones not
        /// worth seeking over again.
        var cursor: [UInt8]
    }

    static let oldestKeptKey = StorePrefix.metadata.key(Array("stateOldestKept".utf8))

    /// With `cache`, the nodes pruned leave it too (the old ones a read of an old state put there).
    public init(store: any KeyValueStore, keptHeights: UInt64, cache: StateNodeCache? = nil) throws(StateError) {
        precondition(keptHeights == 0 || keptHeights >= Self.keptHeightsMin, "keptHeights below \(Self.keptHeightsMin)")
        self.store = store
        self.cache = cache
        self.keptHeights = keptHeights
        let recorded: UInt64
        do {
            if let bytes = try store.get(Self.oldestKeptKey) {
                var reader = CanonicalReader(bytes)
                recorded = try reader.u64("oldest kept height")
                try reader.finish()
            } else {
                recorded = 0
            }
        } catch let error as StorageError {
            throw StateError(.storage, error.description)
        } catch {
            throw StateError(.corruptNode, "the oldest kept state height: \(error)")
        }
        oldest = Atomic(recorded)
        target = Atomic(recorded)
        // What a round interrupted by a restart left is found again from the first entry.
        progress = Mutex(Progress(done: 0, recorded: recorded, cursor: [StorePrefix.staleStateNode.rawValue]))
    }

    /// The oldest height whose state is whole: reads of older ones answer `state.pruned`.
    public var oldestKept: UInt64 { oldest.load(ordering: .acquiring) }

    /// The error for a read of the state at `height`, if it is older than the node keeps.
    public func check(height: UInt64) throws(StateError) {
        let oldest = oldestKept
        guard height >= oldest else {
            throw StateError(.pruned, "the state at height \(height) is pruned; this node keeps heights from \(oldest)")
        }
    }

    /// Block `committed` is durable; `held` is a height whose state must stay whole
    /// however old (a snapshot being served). Returns whether there is pruning to do.
    @discardableResult
    public func retain(committed: UInt64, held: UInt64? = nil) -> Bool {
        guard keptHeights > 0, committed > keptHeights else { return false }
        var through = committed - keptHeights
        if let held { through = min(through, held) }
        guard through > target.load(ordering: .relaxed) else { return false }
        target.store(through, ordering: .releasing)
        return true
    }

    /// Prunes up to `limit` listed nodes of the heights `retain` allows. Returns how many
    /// it pruned: zero when there is nothing left to do. One caller at a time.
    public func prune(limit: Int = StatePruner.pageEntries) throws(StateError) -> Int {
        let through = target.load(ordering: .acquiring)
        var state = progress.withLock { $0 }
        guard through > state.done else { return 0 }
        var batch = WriteBatch()
        if through > state.recorded {
            // Readers stop asking for these heights before the first of their nodes goes.
            oldest.store(through, ordering: .releasing)
            var writer = CanonicalWriter(capacity: 8)
            writer.u64(through)
            batch.put(Self.oldestKeptKey, writer.bytes)
            state.recorded = through
        }
        let page: [(key: [UInt8], value: [UInt8])]
        do { page = try store.scan(prefix: [StorePrefix.staleStateNode.rawValue], start: state.cursor, limit: limit) } catch {
            throw StateError(.storage, error.description)
        }
        var pruned: [StateNodeRef] = []
        var reachedEnd = page.count < limit
        for entry in page {
            guard let stale = Self.decode(entry.key) else {
                throw StateError(.corruptNode, "a stale-node entry of \(entry.key.count) bytes")
            }
            guard stale.height <= through else {
                reachedEnd = true
                break
            }
            batch.delete(StateTree.nodeKey(stale.ref))
            batch.delete(entry.key)
            state.cursor = entry.key + [0]
            pruned.append(stale.ref)
        }
        if reachedEnd { state.done = through }
        do { try store.write(batch, durable: false) } catch { throw StateError(.storage, error.description) }
        cache?.remove(pruned)
        progress.withLock { $0 = state }
        prunedNodes.add(pruned.count, ordering: .relaxed)
        return pruned.count
    }

    /// Heights whose listed nodes are not all pruned yet.
    public var heightsBehind: UInt64 {
        let through = target.load(ordering: .relaxed)
        return through - min(through, progress.withLock { $0.done })
    }

    static func decode(_ key: [UInt8]) -> (height: UInt64, ref: StateNodeRef)? {
        guard key.count == 17 + Hash.byteCount, key[0] == StorePrefix.staleStateNode.rawValue else { return nil }
        func u64(at offset: Int) -> UInt64 { key[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        let hash = key.withUnsafeBytes { Hash(raw: UnsafeRawBufferPointer(rebasing: $0[17...])) }
        return (u64(at: 1), StateNodeRef(version: u64(at: 9), hash: hash))
    }
}
