import CivitasCore
import CivitasCrypto
import CivitasStorage
import Synchronization

/// Where a committed transaction is.
public struct TransactionLocation: Hashable, Sendable {
    public var height: UInt64
    public var index: UInt32
}

/// A committed block as the ledger returns it.
public struct CommittedBlock: Sendable {
    public var block: Block
    public var hash: Hash
    /// Nil only for block 0, which the genesis file vouches for.
    public var certificate: QuorumCertificate?
}

/// The committed chain in the store: blocks, certificates, transaction index, receipts
/// and the last committed height, all written in the block's single durable batch.
public final class Ledger: Sendable {
    private let store: any KeyValueStore
    private let hasher: ChainHasher
    /// Whether a write whose sync its caller deferred is not yet synced.
    private let unsynced = Atomic<Bool>(false)

    static let heightKey = StorePrefix.metadata.key(Array("height".utf8))
    static let genesisKey = StorePrefix.metadata.key(Array("genesis".utf8))
    static let safetyKey = StorePrefix.metadata.key(Array("safety".utf8))
    static let formatKey = StorePrefix.metadata.key(Array("format".utf8))
    /// What a replica promises is durable before a step's effects leave it: the committed
    /// height (and with it the block's batch) and the consensus's safety data.
    public static let promisedKeys = [heightKey, safetyKey]

    /// The layout of the store's contents this code writes and reads. Format 1 stored
    /// one state-tree node per binary level; format 2 four levels per node; format 3
    /// also keeps each receipt in its transaction's index entry (one key, not two); format 4
    /// stores each tree node under the version that wrote it, with an index of roots;
    /// format 5 keeps receipts by height and index, apart from the index entries.
    ///
    /// Format 5 reads a format-4 store as it is: an index entry longer than its location
    /// still holds its receipt. The transaction index is keyed by id, at random, so every
    /// compaction into its first level rewrote all of that level; with the receipts in it
    /// that was 230 bytes per transaction ever committed, 45% of a 10M-key network's
    /// compaction time (docs/benchmarks.md, session 17). Receipts, written in height
    /// order, are moved down by compaction rather than merged.
    public static let storeFormat: UInt64 = 5

    static func epochKey(_ epoch: UInt64) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 16)
        writer.fixed(StorePrefix.metadata.key(Array("epoch/".utf8)))
        writer.u64(epoch)
        return writer.bytes
    }

    public init(store: any KeyValueStore, hasher: ChainHasher) {
        self.store = store
        self.hasher = hasher
    }

    /// The last committed height, or nil for an empty store.
    public func committedHeight() throws(StorageError) -> UInt64? {
        guard let bytes = try store.get(Self.heightKey) else { return nil }
        return try Self.u64(bytes, "committed height")
    }

    public func genesisHash() throws(StorageError) -> Hash? {
        guard let bytes = try store.get(Self.genesisKey) else { return nil }
        guard bytes.count == 32 else { throw StorageError(.corrupt, "genesis hash of \(bytes.count) bytes") }
        return Hash(bytes: bytes)
    }

    /// The store's layout (see `storeFormat`); 1 for stores written before it was recorded.
    public func format() throws(StorageError) -> UInt64 {
        guard let bytes = try store.get(Self.formatKey) else { return 1 }
        return try Self.u64(bytes, "store format")
    }

    /// Records that the store is in this code's format, durably.
    public func recordFormat() throws(StorageError) {
        var batch = WriteBatch()
        batch.put(Self.formatKey, Self.formatBytes)
        try store.write(batch, durable: true)
    }

    private static var formatBytes: [UInt8] {
        var format = CanonicalWriter(capacity: 8)
        format.u64(storeFormat)
        return format.bytes
    }

    public func block(at height: UInt64) throws(StorageError) -> CommittedBlock? {
        guard let bytes = try store.get(StorePrefix.block.key(height: height)) else { return nil }
        let block: Block
        do { block = try Block(canonicalBytes: bytes) } catch {
            throw StorageError(.corrupt, "block \(height): \(error)")
        }
        var certificate: QuorumCertificate?
        if let raw = try store.get(StorePrefix.certificate.key(height: height)) {
            do { certificate = try QuorumCertificate(canonicalBytes: raw) } catch {
                throw StorageError(.corrupt, "certificate \(height): \(error)")
            }
        }
        return CommittedBlock(block: block, hash: block.header.hash(using: hasher), certificate: certificate)
    }

    public func height(ofBlock hash: Hash) throws(StorageError) -> UInt64? {
        guard let bytes = try store.get(StorePrefix.blockHash.key(hash.bytes)) else { return nil }
        return try Self.u64(bytes, "block height")
    }

    public func location(ofTransaction id: Hash) throws(StorageError) -> TransactionLocation? {
        try entry(ofTransaction: id)?.location
    }

    /// Where a committed transaction is and its receipt.
    public func receipt(ofTransaction id: Hash) throws(StorageError) -> (location: TransactionLocation, receipt: Receipt)? {
        guard let (location, inline) = try entry(ofTransaction: id) else { return nil }
        let bytes: [UInt8]
        if let inline {
            bytes = Array(inline)
        } else {
            guard let stored = try store.get(Self.receiptKey(location)) else {
                throw StorageError(.corrupt, "transaction \(id) is indexed at \(location.height)/\(location.index) but has no receipt there")
            }
            bytes = stored
        }
        do { return (location, try Receipt(canonicalBytes: bytes)) } catch {
            throw StorageError(.corrupt, "receipt of transaction \(id): \(error)")
        }
    }

    /// The index entry of `id`: its location, and its receipt if the entry holds it (as
    /// stores of formats 3 and 4 wrote them).
    private func entry(ofTransaction id: Hash) throws(StorageError) -> (location: TransactionLocation, receipt: ArraySlice<UInt8>?)? {
        guard let bytes = try store.get(StorePrefix.transaction.key(id.bytes)) else { return nil }
        guard bytes.count >= 12 else { throw StorageError(.corrupt, "transaction index entry of \(bytes.count) bytes") }
        let height = try Self.u64(Array(bytes[0..<8]), "height")
        let index = bytes[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return (TransactionLocation(height: height, index: index), bytes.count > 12 ? bytes[12...] : nil)
    }

    static func receiptKey(_ location: TransactionLocation) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 13)
        writer.u8(StorePrefix.receipt.rawValue)
        writer.u64(location.height)
        writer.u32(location.index)
        return writer.bytes
    }

    public func safetyData() throws(StorageError) -> [UInt8]? { try store.get(Self.safetyKey) }

    /// Keeps a certified, uncommitted block; not durable by itself (the vote that
    /// follows persists the safety data with an fsync, which flushes it too).
    public func keepCertified(_ entry: SyncResponse.Certified) throws(StorageError) {
        var batch = WriteBatch()
        batch.put(StorePrefix.certifiedBlock.key(entry.block.header.hash(using: hasher).bytes), entry.canonicalBytes)
        try store.write(batch, durable: false)
    }

    /// The certified blocks kept above `height`, lowest first; older ones are removed.
    public func certifiedBlocks(above height: UInt64) throws(StorageError) -> [SyncResponse.Certified] {
        let prefix = [StorePrefix.certifiedBlock.rawValue]
        var kept: [SyncResponse.Certified] = []
        var stale = WriteBatch()
        for entry in try store.scan(prefix: prefix, start: nil, limit: 10_000) {
            guard let certified = try? SyncResponse.Certified(canonicalBytes: entry.value), certified.block.header.height > height else {
                stale.delete(entry.key)
                continue
            }
            kept.append(certified)
        }
        if !stale.isEmpty { try store.write(stale, durable: false) }
        return kept.sorted { $0.block.header.height < $1.block.header.height }
    }

    /// The hand-overs of every epoch change so far, oldest first.
    public func epochChanges() throws(StorageError) -> [EpochChange] {
        let prefix = StorePrefix.metadata.key(Array("epoch/".utf8))
        var changes: [EpochChange] = []
        for entry in try store.scan(prefix: prefix, start: nil, limit: 100_000) {
            do { changes.append(try EpochChange(canonicalBytes: entry.value)) } catch {
                throw StorageError(.corrupt, "epoch change: \(error)")
            }
        }
        return changes.sorted { $0.validators.epoch < $1.validators.epoch }
    }

    /// Writes the consensus's safety data. With `deferSync` it is durable only after
    /// `syncDeferredWrites`, which must come before any vote it guards leaves the node.
    public func persistSafety(_ bytes: [UInt8], deferSync: Bool = false) throws(StorageError) {
        var batch = WriteBatch()
        batch.put(Self.safetyKey, bytes)
        try write(batch, deferSync: deferSync)
    }

    /// Makes the writes made with `deferSync` durable, with one fsync for all of them.
    /// A replica calls it at the end of each step, before the step's effects (votes sent,
    /// commits reported) leave it: a block committed and the vote that follows it in the
    /// same step then cost one fsync, not two.
    public func syncDeferredWrites() throws(StorageError) {
        if unsynced.exchange(false, ordering: .acquiringAndReleasing) { try store.sync() }
    }

    private func write(_ batch: WriteBatch, deferSync: Bool) throws(StorageError) {
        try store.write(batch, durable: !deferSync)
        // A durable write syncs every earlier one too: nothing is left to sync after it.
        unsynced.store(deferSync, ordering: .releasing)
    }

    /// Adds the block, its certificate, receipts and index entries to `batch` (which
    /// already holds the state changes) and writes it durably: after this returns (with
    /// `deferSync`, after `syncDeferredWrites`), the block survives a crash; before, none
    /// of it is visible.
    public func commit(
        _ block: Block, certificate: QuorumCertificate?, receipts: [Receipt], transactionIds: [Hash],
        genesisHash: Hash?, epochChange: EpochChange? = nil, batch: consuming WriteBatch, deferSync: Bool = false
    ) throws(StorageError) {
        let height = block.header.height
        if let epochChange { batch.put(Self.epochKey(epochChange.validators.epoch), epochChange.canonicalBytes) }
        batch.put(StorePrefix.block.key(height: height), block.canonicalBytes)
        if let certificate { batch.put(StorePrefix.certificate.key(height: height), certificate.canonicalBytes) }
        var heightBytes = CanonicalWriter(capacity: 8)
        heightBytes.u64(height)
        let hash = block.header.hash(using: hasher)
        batch.put(StorePrefix.blockHash.key(hash.bytes), heightBytes.bytes)
        // The copy kept while the block was certified but not committed: deleted in the
        // same memtable it was written to, it never reaches a table file or a compaction.
        batch.delete(StorePrefix.certifiedBlock.key(hash.bytes))
        for (index, receipt) in receipts.enumerated() {
            let location = TransactionLocation(height: height, index: UInt32(index))
            batch.put(Self.receiptKey(location), receipt.canonicalBytes)
            var entry = CanonicalWriter(capacity: 12)
            entry.u64(height)
            entry.u32(UInt32(index))
            batch.put(StorePrefix.transaction.key(transactionIds[index].bytes), entry.bytes)
        }
        if let genesisHash {
            batch.put(Self.genesisKey, genesisHash.bytes)
            batch.put(Self.formatKey, Self.formatBytes)
        }
        batch.put(Self.heightKey, heightBytes.bytes)
        try write(batch, deferSync: deferSync)
    }

    /// Writes block `block` as the first this node holds (from a snapshot whose state is
    /// already in the store), with the hand-overs since the genesis, durably.
    public func commitSnapshot(
        _ block: Block, certificate: QuorumCertificate, receipts: [Receipt], transactionIds: [Hash], genesisHash: Hash,
        epochChanges: [EpochChange]
    ) throws(StorageError) {
        var batch = WriteBatch()
        for change in epochChanges { batch.put(Self.epochKey(change.validators.epoch), change.canonicalBytes) }
        var base = CanonicalWriter(capacity: 8)
        base.u64(block.header.height)
        batch.put(Self.baseKey, base.bytes)
        try commit(block, certificate: certificate, receipts: receipts, transactionIds: transactionIds, genesisHash: genesisHash, batch: batch)
    }

    static let baseKey = StorePrefix.metadata.key(Array("base".utf8))

    /// The first height this node holds blocks from: 0, or the height of the snapshot
    /// it started from.
    public func baseHeight() throws(StorageError) -> UInt64 {
        guard let bytes = try store.get(Self.baseKey) else { return 0 }
        return try Self.u64(bytes, "base height")
    }

    private static func u64(_ bytes: [UInt8], _ what: String) throws(StorageError) -> UInt64 {
        guard bytes.count == 8 else { throw StorageError(.corrupt, "\(what) of \(bytes.count) bytes") }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}
