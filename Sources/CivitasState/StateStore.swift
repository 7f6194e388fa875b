import CivitasCore
import CivitasCrypto
import CivitasStorage

/// The latest state as a flat key → value index beside the tree. Execution reads here
/// (one lookup, not a walk of the tree); proofs and historical reads use `StateTree`.
/// Both are written in the same batch as the block, so they never disagree.
public final class StateStore: StateReader, Sendable {
    private let store: any KeyValueStore
    public let tree: StateTree

    public init(store: any KeyValueStore, hasher: ChainHasher, cache: StateNodeCache? = nil, versions: StateVersions? = nil) {
        self.store = store
        self.tree = StateTree(store: store, hasher: hasher, cache: cache, versions: versions)
    }

    public func value(for key: [UInt8]) throws(ExecutionError) -> [UInt8]? {
        do { return try store.get(StorePrefix.stateValue.key(key)) } catch {
            // A failing disk is not the transaction's fault; the node must stop.
            preconditionFailure("state read failed: \(error)")
        }
    }

    /// The tree nodes and flat-index entries that move the state from `root` by
    /// `changes`, and the new root. With `staleAt` (the block's height, on a node that
    /// prunes) the nodes it replaces are listed under it for the pruner (`StateTree.update`).
    /// For a caller that writes the batch at once (see `StateTree.update`).
    public func stage(root: Hash, changes: [StateTree.Change], staleAt height: UInt64?) throws(StateError) -> (
        root: Hash, batch: WriteBatch
    ) {
        let prepared = try prepare(root: root, changes: changes, staleAt: height)
        tree.committed(prepared.nodes)
        return (prepared.root, prepared.batch)
    }

    /// `stage` for a block whose fate is not known yet: the caller tells `tree` whether it
    /// committed or was abandoned (`StateTree.prepare`).
    public func prepare(root: Hash, changes: [StateTree.Change], staleAt height: UInt64?) throws(StateError) -> StateTree.Prepared {
        var prepared = try tree.prepare(root: root, changes: changes, staleAt: height)
        for change in changes {
            if let value = change.value {
                prepared.batch.put(StorePrefix.stateValue.key(change.key), value)
            } else {
                prepared.batch.delete(StorePrefix.stateValue.key(change.key))
            }
        }
        return prepared
    }
}
