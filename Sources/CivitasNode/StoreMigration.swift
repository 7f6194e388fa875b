import CivitasCore
import CivitasCrypto
import CivitasState
import CivitasStorage
import Logging

/// Upgrades a data directory written by an older node in place, where the old layout
/// holds everything the new one needs.
enum StoreMigration {
    /// Records read and written per step: a few tens of megabytes of batch at most.
    static let chunk = 50_000

    /// Format 3 → 4 (ADR 0011): the tree is rebuilt under versioned keys from the flat
    /// index of the latest state, checked against the state root of the committed head,
    /// and the old hash-keyed nodes are deleted. Older roots are no longer provable (the
    /// node answers that their root is not in the store); the latest one is, and blocks,
    /// receipts and the flat index are untouched.
    ///
    /// Safe to interrupt: until the last batch writes the new format, a restart finds
    /// format 3 and starts over (nodes the interrupted run wrote are written again under
    /// new versions; deleting the old ones comes after the new root is checked).
    static func migrate3To4(
        store: any KeyValueStore, state: StateStore, head: CommittedBlock, logger: Logger
    ) throws {
        let expected = head.block.header.stateRoot
        logger.notice("migrating the data directory from store format 3 to 4 (state tree under versioned keys)")
        let started = ContinuousClock.now
        var root = StateTree.emptyRoot
        var records = 0
        var start: [UInt8]? = nil
        let valuePrefix = [StorePrefix.stateValue.rawValue]
        while true {
            let page = try store.scan(prefix: valuePrefix, start: start, limit: chunk)
            guard let last = page.last else { break }
            let changes = page.map { StateTree.Change(key: Array($0.key.dropFirst()), value: $0.value) }
            let (next, batch) = try state.tree.update(root: root, changes: changes, staleAt: head.block.header.height)
            try store.write(batch, durable: false)
            root = next
            records += page.count
            start = last.key + [0]
        }
        guard root == expected else {
            throw NodeError(
                .storage,
                "migrating to store format 4: the latest state (\(records) records) gives root \(root), but block "
                    + "\(head.block.header.height) names \(expected); the data directory is left at format 3 "
                    + "(move it aside and let the node sync from its peers)")
        }
        var deleted = 0
        let oldPrefix = [StorePrefix.stateNodeByHash.rawValue]
        start = nil
        while true {
            // Each page starts after the last: seeking from the prefix again would step
            // over every deletion made so far.
            let page = try store.scan(prefix: oldPrefix, start: start, limit: chunk)
            guard let last = page.last else { break }
            var batch = WriteBatch()
            for entry in page { batch.delete(entry.key) }
            try store.write(batch, durable: false)
            deleted += page.count
            start = last.key + [0]
        }
        var format = CanonicalWriter(capacity: 8)
        format.u64(4)
        var last = WriteBatch()
        last.put(Ledger.formatKey, format.bytes)
        try store.write(last, durable: true)
        logger.notice(
            "store format 4: \(records) records rebuilt into root \(root), \(deleted) old nodes deleted, in \(ContinuousClock.now - started)")
    }
}
