import CCivitasMemory
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
/// A committed block's update drops the versions it replaced, and an abandoned one the
/// nodes it wrote (`StateTree.committed`, `abandoned`), so what stays is the current
/// tree: with a budget above its internal nodes (about 1 GB at 10 million keys; see
/// docs/benchmarks.md) a block reads no tree node from disk. Beyond the budget, entries
/// leave in CLOCK order: one not used since the hand last passed goes first.
///
/// A full node (sixteen children) may carry the hashes of its three inner binary levels
/// (`StateNode.InnerHashes`): an update that changes one of its children then hashes the
/// four subtrees on that child's path, not the fifteen of the node. They are kept in
/// memory only, never stored.
public final class StateNodeCache: Sendable {
    /// What an entry is counted beyond its bytes: its header (56 bytes), its index word
    /// at a load of a quarter to a half, its slot, and the allocator's rounding (an
    /// estimate, not measured).
    static let entryOverhead = 96
    static let innerBytes = 14 * Hash.byteCount

    /// One allocation per node: its ref, its bookkeeping, its bytes and, for a full node
    /// that has them, its inner hashes. A lookup reads the index and then this one place,
    /// and takes no reference count: with the bytes in an `Array` of their own behind a
    /// slot record, finding a cached node at 10 million keys missed the processor's cache
    /// three times in a row and retaining the array (an atomic write to a line not yet
    /// read) stalled behind the last miss, 12.6 µs of the machine per transaction
    /// (docs/benchmarks.md, session 16).
    ///
    /// Layout: ref (40 bytes) ‖ byte count (u32) ‖ slot (u32) ‖ used (u8) ‖ has inner (u8)
    /// ‖ padding to 56 ‖ node bytes ‖ padding to 8 ‖ inner hashes (448 bytes, if any).
    private struct Entry {
        let base: UnsafeMutableRawPointer

        static let headerBytes = 56
        /// An entry's address fits in 48 bits (user-space addresses on the platforms we run
        /// on) and is a multiple of 16 (the arena's blocks are of 64, larger entries are
        /// allocated 16-aligned).
        static let addressMask: UInt64 = (1 << 48) - 1
        static let alignment: UInt64 = 16

        init(base: UnsafeMutableRawPointer) { self.base = base }

        /// The entry at an address (a `slots` word).
        init(word: UInt64) { base = UnsafeMutableRawPointer(bitPattern: UInt(word & Self.addressMask))! }

        /// The entry an index word names: a tag of the ref's hash in the high 16 bits, the
        /// entry's distance from its home position (0–14; 15 for 15 or more) in the next 4,
        /// and its address divided by 16 in the low 44.
        init(indexWord word: UInt64) { base = UnsafeMutableRawPointer(bitPattern: UInt((word & Self.indexAddressMask) << 4))! }

        static let indexAddressMask: UInt64 = (1 << 44) - 1
        static let distanceUnknown = 15

        static func indexWord(tag: UInt64, distance: Int, _ entry: Entry) -> UInt64 {
            tag << 48 | UInt64(min(distance, distanceUnknown)) << 44 | entry.word >> 4
        }

        static func distance(ofIndexWord word: UInt64) -> Int { Int(truncatingIfNeeded: word >> 44) & 0xF }

        /// The index word `word` with its distance replaced.
        static func indexWord(_ word: UInt64, distance: Int) -> UInt64 {
            word & ~(UInt64(0xF) << 44) | UInt64(min(distance, distanceUnknown)) << 44
        }

        static func size(count: Int, hasInner: Bool) -> Int {
            hasInner ? innerOffset(count) + StateNodeCache.innerBytes : headerBytes + count
        }

        static func allocate(_ bytes: [UInt8], _ ref: StateNodeRef, inner: StateNode.InnerHashes?, in arena: inout NodeArena) -> Entry {
            let innerAt = innerOffset(bytes.count)
            let entry = Entry(base: arena.allocate(size(count: bytes.count, hasInner: inner != nil)))
            entry.base.storeBytes(of: ref, as: StateNodeRef.self)
            entry.base.storeBytes(of: UInt32(bytes.count), toByteOffset: 40, as: UInt32.self)
            entry.base.storeBytes(of: 0, toByteOffset: 44, as: UInt32.self)
            entry.base.storeBytes(of: 0, toByteOffset: 48, as: UInt8.self)
            entry.base.storeBytes(of: inner == nil ? 0 : 1, toByteOffset: 49, as: UInt8.self)
            bytes.withUnsafeBytes { (entry.base + headerBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            if let inner { entry.base.storeBytes(of: inner, toByteOffset: innerAt, as: StateNode.InnerHashes.self) }
            return entry
        }

        static func innerOffset(_ count: Int) -> Int { headerBytes + (count + 7) & ~7 }

        var word: UInt64 { UInt64(UInt(bitPattern: base)) }
        var ref: StateNodeRef { base.load(as: StateNodeRef.self) }
        var count: Int { Int(base.load(fromByteOffset: 40, as: UInt32.self)) }
        var slot: Int {
            get { Int(base.load(fromByteOffset: 44, as: UInt32.self)) }
            nonmutating set { base.storeBytes(of: UInt32(newValue), toByteOffset: 44, as: UInt32.self) }
        }
        var used: Bool {
            get { base.load(fromByteOffset: 48, as: UInt8.self) != 0 }
            nonmutating set { base.storeBytes(of: newValue ? 1 : 0, toByteOffset: 48, as: UInt8.self) }
        }
        var hasInner: Bool { base.load(fromByteOffset: 49, as: UInt8.self) != 0 }
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + Self.headerBytes, count: count) }
        var inner: StateNode.InnerHashes {
            base.load(fromByteOffset: Self.innerOffset(count), as: StateNode.InnerHashes.self)
        }
        /// What an entry of `count` node bytes is counted against the budget.
        static func cost(count: Int, hasInner: Bool) -> Int {
            count + StateNodeCache.entryOverhead + (hasInner ? StateNodeCache.innerBytes : 0)
        }

        var cost: Int { Self.cost(count: count, hasInner: hasInner) }
        var size: Int { Self.size(count: count, hasInner: hasInner) }
    }

    /// The index of entries by ref, of our own: open addressing with linear probing over
    /// one array of words (tag, distance from home and address; 0 for none). A lookup is
    /// one probe of a cache line that usually settles it without reading an entry, where a
    /// `Dictionary` keyed by ref hashed forty bytes and missed the cache in its buckets,
    /// keys and values: at a million keys in state, finding cached nodes was nearly half of
    /// the tree's update (docs/benchmarks.md, session 12). `slots` holds the entries in
    /// CLOCK order.
    private struct Table {
        /// Index words, in a mapping of huge pages (`NodeArena`): 64 MB at 10 million keys.
        var index = Words(count: 1024)
        var arena = NodeArena()
        var count = 0
        var slots: [UInt64] = []
        var free: [Int32] = []
        var hand = 0
        var bytes = 0

        /// The digest's first word is already uniform; the version is spread by a multiply.
        @inline(__always) static func mixed(_ ref: StateNodeRef) -> UInt64 {
            ref.hash.leadingWord ^ (ref.version &* 0x9E37_79B9_7F4A_7C15)
        }

        /// Starts loading the index words and then the entries a lookup of each of `refs`
        /// reads. The entry is the first in its probe run whose tag matches, not checked
        /// against the ref: reading the entry's ref would wait for it, and a hint need not
        /// be right.
        func prefetch(_ refs: [StateNodeRef]) {
            let mask = index.count - 1
            for ref in refs { civitas_prefetch(index.address(Int(truncatingIfNeeded: Self.mixed(ref)) & mask)) }
            for ref in refs {
                let hash = Self.mixed(ref)
                let tag = hash >> 48
                var position = Int(truncatingIfNeeded: hash) & mask
                while true {
                    let word = index[position]
                    if word == 0 { break }
                    if word >> 48 == tag {
                        let base = UnsafeRawPointer(Entry(indexWord: word).base)
                        for line in 0..<StateNodeCache.prefetchLines { civitas_prefetch(base + line &* 64) }
                        break
                    }
                    position = (position + 1) & mask
                }
            }
        }

        /// Where `ref`'s entry is in `index`, and the entry, if present.
        func find(_ ref: StateNodeRef) -> (position: Int, entry: Entry)? {
            let hash = Self.mixed(ref)
            let mask = index.count - 1
            let tag = hash >> 48
            var position = Int(truncatingIfNeeded: hash) & mask
            while true {
                let word = index[position]
                if word == 0 { return nil }
                if word >> 48 == tag {
                    let entry = Entry(indexWord: word)
                    if entry.ref == ref { return (position, entry) }
                }
                position = (position + 1) & mask
            }
        }

        /// Room in the index for one more entry, made before it is linked.
        mutating func reserveOne() {
            if (count + 1) * 2 > index.count { grow() }
        }

        mutating func link(_ entry: Entry) {
            let hash = Self.mixed(entry.ref)
            let mask = index.count - 1
            let home = Int(truncatingIfNeeded: hash) & mask
            var position = home
            while index[position] != 0 { position = (position + 1) & mask }
            index[position] = Entry.indexWord(tag: hash >> 48, distance: (position - home) & mask, entry)
            count += 1
        }

        /// Removes the entry at `position`, moving later entries of its run back into the
        /// gap where their probe passes it (no tombstones, so probes stay short). Each word
        /// carries its distance from home, so the entries themselves are not read: at 10
        /// million keys, reading each one's ref to learn its home missed the processor's
        /// cache once per word of the run (docs/benchmarks.md, session 18).
        mutating func unlink(at position: Int) {
            let mask = index.count - 1
            var hole = position
            var next = position
            while true {
                next = (next + 1) & mask
                let word = index[next]
                if word == 0 { break }
                var distance = Entry.distance(ofIndexWord: word)
                if distance == Entry.distanceUnknown {
                    let home = Int(truncatingIfNeeded: Self.mixed(Entry(indexWord: word).ref)) & mask
                    distance = (next - home) & mask
                }
                let back = (next - hole) & mask
                if distance >= back {
                    index[hole] = Entry.indexWord(word, distance: distance - back)
                    hole = next
                }
            }
            index[hole] = 0
            count -= 1
        }

        private mutating func grow() {
            let old = index
            index = Words(count: old.count * 2)
            old.release()
            count = 0
            for word in slots where word != 0 { link(Entry(word: word)) }
        }

        /// Unlinks and frees the entry at index `position`.
        mutating func drop(at position: Int, _ entry: Entry) {
            unlink(at: position)
            slots[entry.slot] = 0
            free.append(Int32(entry.slot))
            bytes -= entry.cost
            arena.release(entry.base, size: entry.size)
        }
    }

    /// A fixed number of zeroed words in a mapping of their own.
    private struct Words {
        let region: NodeArena.Region
        let count: Int

        init(count: Int) {
            self.count = count
            region = NodeArena.map(count * MemoryLayout<UInt64>.stride)
        }

        subscript(position: Int) -> UInt64 {
            get {
                precondition(position >= 0 && position < count)
                return region.base.load(fromByteOffset: position &* 8, as: UInt64.self)
            }
            nonmutating set {
                precondition(position >= 0 && position < count)
                region.base.storeBytes(of: newValue, toByteOffset: position &* 8, as: UInt64.self)
            }
        }

        func address(_ position: Int) -> UnsafeRawPointer { UnsafeRawPointer(region.base + position &* 8) }

        func release() { NodeArena.unmap(region) }
    }

    public let capacityBytes: Int
    private let table = Mutex(Table())
    /// Whether the last update through this cache had to read a node from the store (true
    /// until one has run): while it did not, the next trusts the cache and reads nothing
    /// ahead (`StateTree.prefetch`), which would walk every path a second time.
    let lastUpdateMissed = Atomic<Bool>(true)

    /// Internal nodes updates had to read from the store, since the cache was made: at
    /// steady state with a budget above the tree, none.
    public var nodesReadFromStore: Int { readFromStore.load(ordering: .relaxed) }
    let readFromStore = Atomic<Int>(0)

    public static let defaultCapacityBytes = 512 << 20

    public init(capacityBytes: Int = StateNodeCache.defaultCapacityBytes) {
        precondition(capacityBytes > 0)
        self.capacityBytes = capacityBytes
    }

    deinit {
        table.withLock { table in
            for word in table.slots where word != 0 {
                let entry = Entry(word: word)
                if entry.size > NodeArena.largest { entry.base.deallocate() }
            }
            table.arena.destroy()
            table.index.release()
        }
    }

    func node(_ ref: StateNodeRef) -> [UInt8]? {
        table.withLock { table in
            guard let (_, entry) = table.find(ref) else { return nil }
            entry.used = true
            return Array(entry.bytes)
        }
    }

    /// Decodes the children of the cached internal node `ref` into `children` where the
    /// bytes lie; false if it is not cached.
    func decodeChildren(of ref: StateNodeRef, into children: inout StateNode.Children) throws(CodecError) -> Bool {
        var inner = StateNode.InnerHashes(repeating: .zero)
        var hasInner = false
        return try decodeChildren(of: ref, into: &children, inner: &inner, hasInner: &hasInner)
    }

    /// As `decodeChildren(of:into:)`, and the node's inner hashes into `inner` when the
    /// cache has them (`hasInner`).
    func decodeChildren(of ref: StateNodeRef, into children: inout StateNode.Children, inner: inout StateNode.InnerHashes, hasInner: inout Bool)
        throws(CodecError) -> Bool
    {
        try table.withLock { (table) throws(CodecError) -> Bool in
            guard let (_, entry) = table.find(ref) else { return false }
            entry.used = true
            try StateNode.decodeChildren(of: entry.bytes, into: &children)
            hasInner = entry.hasInner
            if hasInner { inner = entry.inner }
            return true
        }
    }

    /// Calls `body` with the bytes of the cached node `ref`, under the cache's lock; false
    /// if it is not cached.
    func withBytes(of ref: StateNodeRef, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        table.withLock { table in
            guard let (_, entry) = table.find(ref) else { return false }
            entry.used = true
            body(entry.bytes)
            return true
        }
    }

    /// The cache lines `prefetch` asks for per entry: a full node's (a header, sixteen
    /// internal children and its inner hashes, 1,168 bytes); a smaller entry's neighbour
    /// is loaded for nothing.
    static let prefetchLines = 19

    /// Asks the processor to start loading what finding the cached nodes `refs` will
    /// read, and returns without waiting: an update walks its nodes depth first, one
    /// lookup after another, and at 10 million keys in state each waited for two trips
    /// to memory (the index word, then the entry); asked for a level's nodes together
    /// first, their trips overlap.
    func prefetch(_ refs: [StateNodeRef]) {
        table.withLock { $0.prefetch(refs) }
    }

    /// Whether the cached node `ref` carries its inner hashes (false if not cached).
    func hasInner(_ ref: StateNodeRef) -> Bool {
        table.withLock { $0.find(ref)?.entry.hasInner ?? false }
    }

    func insert(_ bytes: [UInt8], _ ref: StateNodeRef, inner: StateNode.InnerHashes? = nil) {
        insert(bytes, ref, inner: inner, evicting: true)
    }

    /// Adds the node only if it fits without evicting anything; false when it does not.
    /// Warming uses it, so that it never pushes out what blocks are using meanwhile.
    func insertIfRoom(_ bytes: [UInt8], _ ref: StateNodeRef) -> Bool {
        insert(bytes, ref, inner: nil, evicting: false)
    }

    @discardableResult
    private func insert(_ bytes: [UInt8], _ ref: StateNodeRef, inner: StateNode.InnerHashes?, evicting: Bool) -> Bool {
        let cost = Entry.cost(count: bytes.count, hasInner: inner != nil)
        guard cost <= capacityBytes, bytes.count <= Int(UInt32.max) else { return false }
        return table.withLock { table in
            if let (_, entry) = table.find(ref) {
                entry.used = true
                return true
            }
            if evicting {
                while table.bytes + cost > capacityBytes, Self.evictOne(&table) {}
            }
            guard table.bytes + cost <= capacityBytes else { return false }
            let entry = Entry.allocate(bytes, ref, inner: inner, in: &table.arena)
            // An address beyond 48 bits or not 16-aligned does not fit an index word and
            // is not cached (not met on the platforms we run on, but not assumed).
            guard entry.word & ~Entry.addressMask == 0, entry.word % Entry.alignment == 0 else {
                table.arena.release(entry.base, size: entry.size)
                return false
            }
            table.reserveOne()
            if let reused = table.free.popLast() {
                entry.slot = Int(reused)
                table.slots[Int(reused)] = entry.word
            } else {
                entry.slot = table.slots.count
                table.slots.append(entry.word)
            }
            table.link(entry)
            table.bytes += cost
            return true
        }
    }

    func remove(_ ref: StateNodeRef) { remove([ref]) }

    /// Drops the nodes of `refs` that are cached.
    func remove(_ refs: [StateNodeRef]) {
        guard !refs.isEmpty else { return }
        table.withLock { table in
            for ref in refs {
                guard let (position, entry) = table.find(ref) else { continue }
                table.drop(at: position, entry)
            }
        }
    }

    public var count: Int { table.withLock { $0.count } }

    /// The refs of every cached node, for checks of what the cache holds.
    public var refs: [StateNodeRef] {
        table.withLock { table in table.slots.filter { $0 != 0 }.map { Entry(word: $0).ref } }
    }
    /// Bytes held, counting each entry's overhead.
    public var bytes: Int { table.withLock { $0.bytes } }

    /// Advances the hand to the first entry not used since it last passed, clearing the
    /// marks on the way, and evicts it. False when nothing is left to evict.
    private static func evictOne(_ table: inout Table) -> Bool {
        guard table.count > 0 else { return false }
        // Two turns at most: the first clears every mark it passes.
        for _ in 0..<(2 * table.slots.count) {
            if table.hand >= table.slots.count { table.hand = 0 }
            let word = table.slots[table.hand]
            table.hand += 1
            guard word != 0 else { continue }
            let entry = Entry(word: word)
            if entry.used {
                entry.used = false
                continue
            }
            guard let (position, _) = table.find(entry.ref) else { continue }
            table.drop(at: position, entry)
            return true
        }
        return false
    }
}
