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
    /// What an entry is counted beyond its bytes, an estimate of its index entries (8
    /// bytes at a load of a quarter to a half), its slot record and its array's header.
    /// Not measured: the allocator's rounding comes on top.
    static let entryOverhead = 96

    private struct Slot {
        var ref: StateNodeRef
        var bytes: [UInt8]?
        var used: Bool
    }

    /// The slots, and an index of them by ref of our own: open addressing with linear
    /// probing over one array of words, each the slot number + 1 (0 for none) below the
    /// upper half of the ref's mixed hash. A lookup is one probe of a cache line that
    /// usually settles it without reading a slot, where a `Dictionary` keyed by ref
    /// hashed forty bytes and missed the cache in its buckets, keys and values: at a
    /// million keys in state, finding cached nodes was nearly half of the tree's update
    /// (docs/benchmarks.md, session 12).
    private struct Table {
        var index = [UInt64](repeating: 0, count: 1024)
        var count = 0
        var slots: [Slot] = []
        var free: [Int32] = []
        var hand = 0
        var bytes = 0

        /// The digest's first word is already uniform; the version is spread by a multiply.
        @inline(__always) static func mixed(_ ref: StateNodeRef) -> UInt64 {
            ref.hash.leadingWord ^ (ref.version &* 0x9E37_79B9_7F4A_7C15)
        }

        @inline(__always) static func slot(_ entry: UInt64) -> Int { Int(UInt32(truncatingIfNeeded: entry)) - 1 }

        /// Where `ref`'s entry is in `index`, if present.
        func position(of ref: StateNodeRef) -> Int? {
            let hash = Self.mixed(ref)
            let mask = index.count - 1
            let tag = hash >> 32
            var position = Int(truncatingIfNeeded: hash) & mask
            while true {
                let entry = index[position]
                if entry == 0 { return nil }
                if entry >> 32 == tag, slots[Self.slot(entry)].ref == ref { return position }
                position = (position + 1) & mask
            }
        }

        /// Room in the index for one more entry, made before the slot is filled (growing
        /// relinks every filled slot).
        mutating func reserveOne() {
            if (count + 1) * 2 > index.count { grow() }
        }

        mutating func link(_ slot: Int, _ ref: StateNodeRef) {
            let hash = Self.mixed(ref)
            let mask = index.count - 1
            var position = Int(truncatingIfNeeded: hash) & mask
            while index[position] != 0 { position = (position + 1) & mask }
            index[position] = (hash >> 32) << 32 | UInt64(slot + 1)
            count += 1
        }

        /// Removes the entry at `position`, moving later entries of its run back into the
        /// gap where their probe passes it (no tombstones, so probes stay short).
        mutating func unlink(at position: Int) {
            let mask = index.count - 1
            var hole = position
            var next = position
            while true {
                next = (next + 1) & mask
                let entry = index[next]
                if entry == 0 { break }
                let home = Int(truncatingIfNeeded: Self.mixed(slots[Self.slot(entry)].ref)) & mask
                if (next - home) & mask >= (next - hole) & mask {
                    index[hole] = entry
                    hole = next
                }
            }
            index[hole] = 0
            count -= 1
        }

        private mutating func grow() {
            index = [UInt64](repeating: 0, count: index.count * 2)
            count = 0
            for slot in slots.indices where slots[slot].bytes != nil { link(slot, slots[slot].ref) }
        }
    }

    public let capacityBytes: Int
    private let table = Mutex(Table())
    /// Whether the last update through this cache had to read a node from the store (true
    /// until one has run): while it did not, the next trusts the cache and reads nothing
    /// ahead (`StateTree.prefetch`), which would walk every path a second time.
    let lastUpdateMissed = Atomic<Bool>(true)

    public static let defaultCapacityBytes = 512 << 20

    public init(capacityBytes: Int = StateNodeCache.defaultCapacityBytes) {
        precondition(capacityBytes > 0)
        self.capacityBytes = capacityBytes
    }

    func node(_ ref: StateNodeRef) -> [UInt8]? {
        table.withLock { table in
            guard let position = table.position(of: ref) else { return nil }
            let slot = Table.slot(table.index[position])
            table.slots[slot].used = true
            return table.slots[slot].bytes
        }
    }

    /// Decodes the children of the cached internal node `ref` into `children` where the
    /// bytes lie, without taking a reference to them; false if it is not cached.
    func decodeChildren(of ref: StateNodeRef, into children: inout StateNode.Children) throws(CodecError) -> Bool {
        try table.withLock { (table) throws(CodecError) -> Bool in
            guard let position = table.position(of: ref) else { return false }
            let slot = Table.slot(table.index[position])
            table.slots[slot].used = true
            try StateNode.decodeChildren(of: table.slots[slot].bytes!, into: &children)
            return true
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
            if let position = table.position(of: ref) {
                table.slots[Table.slot(table.index[position])].used = true
                return true
            }
            if evicting {
                while table.bytes + cost > capacityBytes, Self.evictOne(&table) {}
            }
            guard table.bytes + cost <= capacityBytes else { return false }
            table.reserveOne()
            let entry = Slot(ref: ref, bytes: bytes, used: false)
            let slot: Int
            if let reused = table.free.popLast() {
                slot = Int(reused)
                table.slots[slot] = entry
            } else {
                slot = table.slots.count
                table.slots.append(entry)
            }
            table.link(slot, ref)
            table.bytes += cost
            return true
        }
    }

    /// Drops the node `ref` if cached: an update calls it for the nodes it replaces,
    /// which only an older root or an abandoned fork would read again.
    func remove(_ ref: StateNodeRef) {
        table.withLock { table in
            guard let position = table.position(of: ref) else { return }
            let slot = Table.slot(table.index[position])
            table.unlink(at: position)
            Self.clear(slot, &table)
        }
    }

    public var count: Int { table.withLock { $0.count } }
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
        guard table.count > 0 else { return false }
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
            if let position = table.position(of: table.slots[slot].ref) { table.unlink(at: position) }
            clear(slot, &table)
            return true
        }
        return false
    }
}
