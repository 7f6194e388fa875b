import CivitasCore
import Synchronization

/// Decoded state-tree nodes by hash, shared by every view of one node's state.
///
/// Nodes are content-addressed, so an entry is never stale: whatever version or fork
/// asked for it, the node with that hash has that content. Without the cache each key
/// written costs one store read per level of the tree (about log2 of the key count).
/// Bounded by two generations: entries go into the young one; when it fills, it becomes
/// the old one and the previous old one is dropped; a hit in the old one moves back.
public final class StateNodeCache: Sendable {
    private struct Generations {
        var young: [Hash: StateNode] = [:]
        var old: [Hash: StateNode] = [:]
    }

    public let capacity: Int
    private let generations: Mutex<Generations>

    /// `capacity`: most entries per generation (so at most twice this many in all).
    public init(capacity: Int = 200_000) {
        precondition(capacity > 0)
        self.capacity = capacity
        var generations = Generations()
        generations.young.reserveCapacity(capacity)
        self.generations = Mutex(generations)
    }

    func node(_ hash: Hash) -> StateNode? {
        generations.withLock { state in
            if let node = state.young[hash] { return node }
            guard let node = state.old.removeValue(forKey: hash) else { return nil }
            Self.insert(node, hash, into: &state, capacity: capacity)
            return node
        }
    }

    func insert(_ node: StateNode, _ hash: Hash) {
        generations.withLock { Self.insert(node, hash, into: &$0, capacity: capacity) }
    }

    public var count: Int { generations.withLock { $0.young.count + $0.old.count } }

    private static func insert(_ node: StateNode, _ hash: Hash, into state: inout Generations, capacity: Int) {
        if state.young.count >= capacity {
            // The tables swap and the dropped one is emptied in place: a new table per
            // turnover was grown by doubling into fresh pages, and the page faults and
            // rehashing cost more than the tree update that filled it.
            swap(&state.old, &state.young)
            state.young.removeAll(keepingCapacity: true)
            state.young.reserveCapacity(capacity)
        }
        state.young[hash] = node
    }
}
