import CivitasCore
import Synchronization

/// Encoded internal nodes of the state tree by version and hash (their store key), shared
/// by every view of one node's state, within a budget of bytes.
///
/// An entry is never stale: versions are never reused within a process (`StateVersions`),
/// so whatever fork asks for a ref, the node under it has that content, and its children's
/// refs are those written with it. Without the cache each key
/// written costs one store read per stored level of the tree. Leaves are not kept: an
/// update never reads them (their key hashes are in their parents).
///
/// An update drops the versions it replaces (`remove`), so what stays is the current
/// tree: with a budget above its internal nodes (about 1 GB at 10 million keys; see
/// docs/benchmarks.md) a block reads no tree node from disk. Beyond the budget, entries
/// leave in CLOCK order: one not used since the hand last passed goes first.
public final class StateNodeCache: Sendable {
    /// What an entry is counted beyond its bytes, an estimate of its index slot (ref and
    /// position), its slot record and its array's header. Not measured: the allocator's
    /// rounding and the index's spare capacity come on top.
    static let entryOverhead = 96

    private struct Slot {
        var ref: StateNodeRef
        var bytes: [UInt8]?
        var used: Bool
    }

    private struct Table {
        var index: [StateNodeRef: Int32] = [:]
        var slots: [Slot] = []
        var free: [Int32] = []
        var hand = 0
        var bytes = 0
    }

    public let capacityBytes: Int
    private let table = Mutex(Table())

    public static let defaultCapacityBytes = 512 << 20

    public init(capacityBytes: Int = StateNodeCache.defaultCapacityBytes) {
        precondition(capacityBytes > 0)
        self.capacityBytes = capacityBytes
    }

    func node(_ ref: StateNodeRef) -> [UInt8]? {
        table.withLock { table in
            guard let slot = table.index[ref] else { return nil }
            table.slots[Int(slot)].used = true
            return table.slots[Int(slot)].bytes
        }
    }

    func insert(_ bytes: [UInt8], _ ref: StateNodeRef) {
        insert(bytes, ref, evicting: true)
    }

    /// Adds the node only if it fits without evicting anything; false when it does not.
    /// Warming uses it, so that it never pushes out what blocks are using meanwhile.
    func insertIfRoom(_ bytes: [UInt8], _ ref: StateNodeRef) -> Bool {
        insert(bytes, ref, evicting: false)
    }

    @discardableResult
    private func insert(_ bytes: [UInt8], _ ref: StateNodeRef, evicting: Bool) -> Bool {
        let cost = bytes.count + Self.entryOverhead
        guard cost <= capacityBytes else { return false }
        return table.withLock { table in
            if let slot = table.index[ref] {
                table.slots[Int(slot)].used = true
                return true
            }
            if evicting {
                while table.bytes + cost > capacityBytes, Self.evictOne(&table) {}
            }
            guard table.bytes + cost <= capacityBytes else { return false }
            let entry = Slot(ref: ref, bytes: bytes, used: false)
            let slot: Int32
            if let reused = table.free.popLast() {
                slot = reused
                table.slots[Int(slot)] = entry
            } else {
                slot = Int32(table.slots.count)
                table.slots.append(entry)
            }
            table.index[ref] = slot
            table.bytes += cost
            return true
        }
    }

    /// Drops the node `ref` if cached: an update calls it for the nodes it replaces,
    /// which only an older root or an abandoned fork would read again.
    func remove(_ ref: StateNodeRef) {
        table.withLock { table in
            guard let slot = table.index.removeValue(forKey: ref) else { return }
            Self.clear(Int(slot), &table)
        }
    }

    public var count: Int { table.withLock { $0.index.count } }
    /// Bytes held, counting each entry's overhead.
    public var bytes: Int { table.withLock { $0.bytes } }

    private static func clear(_ slot: Int, _ table: inout Table) {
        table.bytes -= (table.slots[slot].bytes?.count ?? 0) + entryOverhead
        table.slots[slot].bytes = nil
        table.slots[slot].used = false
        table.free.append(Int32(slot))
    }

    /// Advances the hand to the first entry not used since it last passed, clearing the
    /// marks on the way, and evicts it. False when nothing is left to evict.
    private static func evictOne(_ table: inout Table) -> Bool {
        guard !table.index.isEmpty else { return false }
        // Two turns at most: the first clears every mark it passes.
        for _ in 0..<(2 * table.slots.count) {
            if table.hand >= table.slots.count { table.hand = 0 }
            let slot = table.hand
            table.hand += 1
            guard table.slots[slot].bytes != nil else { continue }
            if table.slots[slot].used {
                table.slots[slot].used = false
                continue
            }
            table.index.removeValue(forKey: table.slots[slot].ref)
            clear(slot, &table)
            return true
        }
        return false
    }
}
