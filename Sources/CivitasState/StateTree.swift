import CivitasCore
import CivitasCrypto
import CivitasStorage
import Synchronization

public struct StateError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case missingNode = "state.missing_node"
        case corruptNode = "state.corrupt_node"
        case storage = "state.storage"
        case keyTooLarge = "state.key_too_large"
        case valueTooLarge = "state.value_too_large"
        /// The state asked for is older than the node keeps (`StatePruner`).
        case pruned = "state.pruned"
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// The versions a node's state updates write their nodes under, shared by every view of
/// that state: each update takes the next one, so two updates (one of them perhaps of an
/// abandoned fork) never write different encodings of a node under the same key in one
/// process, and the node cache, keyed like the store, never returns another fork's node.
public final class StateVersions: Sendable {
    private let last: Atomic<UInt64>

    public init(last: UInt64) { self.last = Atomic(last) }

    /// Continues after the last version a committed update wrote into `store` (0 for a new one).
    public convenience init(store: any KeyValueStore) throws(StateError) {
        let bytes: [UInt8]?
        do { bytes = try store.get(StateTree.versionKey) } catch { throw StateError(.storage, error.description) }
        guard let bytes else {
            self.init(last: 0)
            return
        }
        var reader = CanonicalReader(bytes)
        do {
            let last = try reader.u64("state version")
            try reader.finish()
            self.init(last: last)
        } catch { throw StateError(.corruptNode, "the last state version: \(error)") }
    }

    func next() -> UInt64 { last.add(1, ordering: .relaxed).newValue }
}

/// The authenticated state: a binary sparse Merkle tree over hashed keys, versioned by
/// root (every block header names its root; nodes are shared between versions), stored
/// four levels to a node (see `StateNode`), each node under the version that wrote it.
///
/// Canonical form (which proofs rely on): an empty subtree is the zero hash, and a
/// subtree holding a single leaf is represented by that leaf at the subtree's top.
/// Because the shape depends only on the set of keys, every node computes the same
/// root for the same state regardless of the order of past writes.
public final class StateTree: Sendable {
    public let hasher: ChainHasher
    private let store: any KeyValueStore
    private let cache: StateNodeCache?
    private let versions: StateVersions

    /// Without `versions`, the tree continues from the last version stored (0 if it cannot
    /// be read: a version reused after a failed read only costs locality, since a key's
    /// content is fixed by its hash). Views of one node's state must share theirs.
    public init(store: any KeyValueStore, hasher: ChainHasher, cache: StateNodeCache? = nil, versions: StateVersions? = nil) {
        self.store = store
        self.hasher = hasher
        self.cache = cache
        self.versions = versions ?? ((try? StateVersions(store: store)) ?? StateVersions(last: 0))
    }

    static let versionKey = StorePrefix.metadata.key(Array("stateVersion".utf8))

    public static let emptyRoot = Hash.zero

    // MARK: Reading

    public func get(_ key: [UInt8], root: Hash) throws(StateError) -> [UInt8]? {
        try prove(key, root: root).value
    }

    /// A proof of `key`'s value (or absence) under `root`.
    public func prove(_ key: [UInt8], root: Hash) throws(StateError) -> StateProof {
        let keyHash = hasher.hash(.stateKey, key)
        var siblings: [Hash] = []
        var current = try child(root)
        var depth = 0
        while current.kind != .empty {
            switch try load(current.ref) {
            case .internalNode(var children):
                // The binary levels inside the stored node: the sibling at each is the
                // hash of the other half of the remaining slots.
                var low = 0
                var width = StateNode.fanout
                var reached = StateNode.Child.empty
                var inner = StateNode.InnerHashes(repeating: .zero)
                while width > 1 {
                    width /= 2
                    let goRight = keyHash.bit(depth)
                    let other = goRight ? low : low + width
                    if goRight { low += width }
                    siblings.append(fold(&children, other, width, &inner, reuse: 0).hash)
                    depth += 1
                    reached = fold(&children, low, width, &inner, reuse: 0)
                    // A lone leaf or an empty subtree ends the path here, as in the binary tree.
                    if reached.kind != .internalNode { break }
                }
                current = reached
            case .leaf(let leafKeyHash, let valueHash, _, let value):
                if leafKeyHash == keyHash {
                    return StateProof(key: key, value: value, otherLeaf: nil, siblings: siblings)
                }
                return StateProof(
                    key: key, value: nil, otherLeaf: .init(keyHash: leafKeyHash, valueHash: valueHash), siblings: siblings)
            }
        }
        return StateProof(key: key, value: nil, otherLeaf: nil, siblings: siblings)
    }

    /// One entry of the state as a snapshot carries it.
    public struct Entry: Hashable, Sendable {
        public var key: [UInt8]
        public var value: [UInt8]
        public init(key: [UInt8], value: [UInt8]) {
            self.key = key
            self.value = value
        }
    }

    /// The entries under `root` in increasing key-hash order, starting after key hash
    /// `after`, until `limit` entries or about `bytesMax` bytes. Subtrees wholly at or
    /// before `after` are not read, so a long listing resumes cheaply.
    public func entries(root: Hash, after: Hash?, limit: Int, bytesMax: Int) throws(StateError) -> [Entry] {
        var out: [Entry] = []
        var bytes = 0
        func walk(_ node: StateNode.Child, depth: Int, onPath: Bool) throws(StateError) -> Bool {
            guard node.kind != .empty else { return true }
            guard out.count < limit, bytes < bytesMax else { return false }
            switch try load(node.ref) {
            case .leaf(let keyHash, _, let key, let value):
                if let after, keyHash <= after { return true }
                out.append(Entry(key: key, value: value))
                bytes += key.count + value.count
                return true
            case .internalNode(let children):
                // On the path of `after`, the slots before its own lie wholly before it.
                let afterSlot = onPath ? after?.nibble(depth) : nil
                for slot in 0..<StateNode.fanout where children[slot].kind != .empty {
                    if let afterSlot, slot < afterSlot { continue }
                    guard try walk(children[slot], depth: depth + 1, onPath: slot == afterSlot) else { return false }
                }
                return true
            }
        }
        _ = try walk(try child(root), depth: 0, onPath: after != nil)
        return out
    }

    /// Reads the internal nodes under `root` into the cache, breadth first, until the
    /// next one would not fit in its budget or the tree is read; `stop` is asked before
    /// each chunk of a level, whose nodes are read together. A restarted node calls it in
    /// the background: its blocks then find the top of the tree (or all of it) in memory
    /// rather than reading a path of nodes from disk per written key. Never evicts; stops
    /// at the first chunk it cannot read. Returns how many nodes it read from the store.
    @discardableResult
    public func warm(root: Hash, stop: () -> Bool = { false }) -> Int {
        guard let cache, let top = try? child(root), top.kind == .internalNode else { return 0 }
        var level = [top.ref]
        var read = 0
        var children = StateNode.Children(repeating: .empty)
        while !level.isEmpty {
            var next: [StateNodeRef] = []
            // A level's nodes are read a chunk at a time, each chunk's together.
            for chunkStart in stride(from: 0, to: level.count, by: Self.warmChunk) {
                if stop() { return read }
                let chunk = level[chunkStart..<min(chunkStart + Self.warmChunk, level.count)]
                var uncached: [StateNodeRef] = []
                func enqueueInternalChildren() {
                    for slot in 0..<StateNode.fanout where children[slot].kind == .internalNode { next.append(children[slot].ref) }
                }
                for ref in chunk {
                    children = StateNode.Children(repeating: .empty)
                    if (try? cache.decodeChildren(of: ref, into: &children)) == true {
                        enqueueInternalChildren()
                    } else {
                        uncached.append(ref)
                    }
                }
                guard let stored = try? storedBytes(uncached) else { return read }
                for (ref, bytes) in zip(uncached, stored) {
                    children = StateNode.Children(repeating: .empty)
                    guard bytes.first == StateNode.internalTag, (try? StateNode.decodeChildren(of: bytes, into: &children)) != nil,
                        cache.insertIfRoom(bytes, ref)
                    else { return read }
                    read += 1
                    enqueueInternalChildren()
                }
            }
            // In store-key order (version, then hash), a level's reads walk the files
            // front to back, and nodes that share a block are read one after another, the
            // block still cached: at 10 million keys most of a level's nodes are 150-byte
            // neighbours of others written by the same block.
            next.sort { $0.version != $1.version ? $0.version < $1.version : $0.hash < $1.hash }
            level = next
        }
        return read
    }

    static let warmChunk = 4_096

    private func load(_ ref: StateNodeRef) throws(StateError) -> StateNode {
        let (bytes, cached) = try encoded(ref)
        let node = try decode(bytes, ref)
        if !cached, case .internalNode = node { cache?.insert(bytes, ref) }
        return node
    }

    /// The children of the internal node `ref`, as `load` would give them, decoded in
    /// place, and its inner hashes if the cache has them (then true).
    private func loadChildren(
        _ ref: StateNodeRef, into children: inout StateNode.Children, inner: inout StateNode.InnerHashes, reads: inout NodeReads
    ) throws(StateError) -> Bool {
        var hasInner = false
        do {
            if let cache, try cache.decodeChildren(of: ref, into: &children, inner: &inner, hasInner: &hasInner) { return hasInner }
        } catch { throw Self.corruptInternal(ref, error) }
        let bytes: [UInt8]
        if let read = reads.fetched[ref] {
            bytes = read
        } else {
            bytes = try storedBytes(ref)
            reads.fromStore += 1
        }
        do { try StateNode.decodeChildren(of: bytes, into: &children) } catch { throw Self.corruptInternal(ref, error) }
        cache?.insert(bytes, ref)
        return false
    }

    private static func corruptInternal(_ ref: StateNodeRef, _ error: CodecError) -> StateError {
        StateError(.corruptNode, "state node \(ref.hash) of version \(ref.version), named internal by its parent: \(error)")
    }

    /// The stored bytes of `refs`, read together (see `KeyValueStore.getMany`).
    private func storedBytes(_ refs: [StateNodeRef]) throws(StateError) -> [[UInt8]] {
        let found: [[UInt8]?]
        do { found = try store.getMany(refs.map(Self.nodeKey)) } catch { throw StateError(.storage, error.description) }
        var nodes: [[UInt8]] = []
        nodes.reserveCapacity(refs.count)
        for (ref, bytes) in zip(refs, found) {
            guard let bytes else { throw StateError(.missingNode, "state node \(ref.hash) of version \(ref.version) is not in the store") }
            nodes.append(bytes)
        }
        return nodes
    }

    /// The internal nodes `apply` will load for `updates` that the cache does not hold,
    /// read a level at a time, each level's together: applied depth first, one read after
    /// another, a state larger than the cache (or a node just restarted, its cache cold)
    /// waited out the disk's latency for each, and blocks of 10 million keys took seconds.
    /// Cached nodes are decoded here and again by `apply`, which doubled the cost of finding
    /// them (18 µs of the machine per transaction at 10 million keys): an update after one
    /// that found every node cached does not read ahead.
    private func prefetch(_ root: StateNode.Child, _ updates: [Update], into reads: inout NodeReads) throws(StateError) {
        guard root.kind == .internalNode else { return }
        var level: [PathNode] = [(root.ref, updates.indices)]
        var depth = 0
        var children = StateNode.Children(repeating: .empty)
        while !level.isEmpty {
            var next: [PathNode] = []
            var missing: [PathNode] = []
            func descend(_ range: Range<Int>) { Self.internalChildren(&children, updates[...], range, depth: depth, into: &next) }
            for entry in level {
                children = StateNode.Children(repeating: .empty)
                let cached: Bool
                do { cached = try cache?.decodeChildren(of: entry.ref, into: &children) ?? false } catch {
                    throw Self.corruptInternal(entry.ref, error)
                }
                if cached { descend(entry.updates) } else { missing.append(entry) }
            }
            if !missing.isEmpty {
                for (entry, bytes) in zip(missing, try storedBytes(missing.map(\.ref))) {
                    children = StateNode.Children(repeating: .empty)
                    do { try StateNode.decodeChildren(of: bytes, into: &children) } catch { throw Self.corruptInternal(entry.ref, error) }
                    reads.fetched[entry.ref] = bytes
                    reads.fromStore += 1
                    descend(entry.updates)
                }
            }
            level = next
            depth += 1
        }
    }

    /// An internal node on the paths of the updates in `updates`, by index.
    private typealias PathNode = (ref: StateNodeRef, updates: Range<Int>)

    /// Appends to `next` the internal nodes among `children` (of a node at stored level
    /// `depth`) that the updates of `range` reach, each with the updates under it.
    private static func internalChildren(
        _ children: inout StateNode.Children, _ updates: ArraySlice<Update>, _ range: Range<Int>, depth: Int, into next: inout [PathNode]
    ) {
        let run = updates[range]
        var start = range.lowerBound
        while start < range.upperBound {
            let (slot, end) = slotRun(run, from: start, depth: depth)
            if children[slot].kind == .internalNode { next.append((children[slot].ref, start..<end)) }
            start = end
        }
    }

    /// `internalChildren` of an encoded node, reading only the slots the updates reach
    /// (`StateNode.ChildCursor`): `readAhead` passes every node below its start this way,
    /// and `apply` decodes each of them whole after it.
    private static func internalChildren(
        encoded: UnsafeRawBufferPointer, _ updates: ArraySlice<Update>, _ range: Range<Int>, depth: Int, into next: inout [PathNode]
    ) {
        let run = updates[range]
        var cursor = StateNode.ChildCursor(encoded)
        var start = range.lowerBound
        while start < range.upperBound {
            let (slot, end) = slotRun(run, from: start, depth: depth)
            if let child = cursor.child(at: slot), child.kind == .internalNode { next.append((child.ref, start..<end)) }
            start = end
        }
    }

    /// The slot at stored level `depth` of the update at `start` (updates sorted by key
    /// hash), and the end of the run of updates after it that share that slot.
    @inline(__always)
    private static func slotRun(_ updates: ArraySlice<Update>, from start: Int, depth: Int) -> (slot: Int, end: Int) {
        let slot = updates[start].keyHash.nibble(depth)
        var end = start + 1
        while end < updates.endIndex, updates[end].keyHash.nibble(depth) == slot { end += 1 }
        return (slot, end)
    }

    /// The nodes one update read from the store: ahead (`prefetch`) or when `apply` met them.
    private struct NodeReads {
        var fetched: [StateNodeRef: [UInt8]] = [:]
        var fromStore = 0
    }

    /// The bytes of node `ref`, and whether the cache gave them.
    private func encoded(_ ref: StateNodeRef) throws(StateError) -> (bytes: [UInt8], cached: Bool) {
        if let bytes = cache?.node(ref) { return (bytes, true) }
        return (try storedBytes(ref), false)
    }

    /// The bytes of node `ref` as the store holds them.
    private func storedBytes(_ ref: StateNodeRef) throws(StateError) -> [UInt8] {
        let bytes: [UInt8]?
        do { bytes = try store.get(Self.nodeKey(ref)) } catch {
            throw StateError(.storage, error.description)
        }
        guard let bytes else { throw StateError(.missingNode, "state node \(ref.hash) of version \(ref.version) is not in the store") }
        return bytes
    }

    private func decode(_ bytes: [UInt8], _ ref: StateNodeRef) throws(StateError) -> StateNode {
        do { return try StateNode(decoding: bytes) } catch {
            throw StateError(.corruptNode, "state node \(ref.hash) of version \(ref.version): \(error)")
        }
    }

    /// `s` + version + hash, built in one allocation: a block writes thousands of them.
    public static func nodeKey(_ ref: StateNodeRef) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(9 + Hash.byteCount)
        key.append(StorePrefix.stateNode.rawValue)
        withUnsafeBytes(of: ref.version.bigEndian) { key.append(contentsOf: $0) }
        ref.hash.append(to: &key)
        return key
    }

    /// `x` + height (u64 BE) + version (u64 BE) + hash: node `ref`, which the update of
    /// block `height` replaced (ADR 0013). Written in the block's batch; the state of
    /// `height - 1` and older may name the node, the state of `height` and later do not.
    static func staleKey(height: UInt64, _ ref: StateNodeRef) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(17 + Hash.byteCount)
        key.append(StorePrefix.staleStateNode.rawValue)
        withUnsafeBytes(of: height.bigEndian) { key.append(contentsOf: $0) }
        withUnsafeBytes(of: ref.version.bigEndian) { key.append(contentsOf: $0) }
        ref.hash.append(to: &key)
        return key
    }

    static func rootKey(_ hash: Hash) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(1 + Hash.byteCount)
        key.append(StorePrefix.stateRoot.rawValue)
        hash.append(to: &key)
        return key
    }

    // MARK: Writing

    /// One change to apply: a value, or nil to delete the key.
    public struct Change: Sendable {
        public var key: [UInt8]
        public var value: [UInt8]?
        public init(key: [UInt8], value: [UInt8]?) {
            self.key = key
            self.value = value
        }
    }

    private struct Update {
        var keyHash: Hash
        var key: [UInt8]
        /// Nil deletes the key.
        var value: [UInt8]?
        /// Set for a leaf already in the tree that only moves down, or whose key is written
        /// with the value it has: its node is kept.
        var storedLeaf: StateNode.Child? = nil
        /// The value's hash and the leaf's, when `apply` computed them to compare with the
        /// stored leaf of the key.
        var hashes: (value: Hash, leaf: Hash)? = nil

        var keepsAKey: Bool { value != nil || storedLeaf != nil }
    }

    /// Applies `changes` to the tree under `root` and returns the new root with the new
    /// nodes to write, for a caller that writes the batch at once: the cache forgets the
    /// nodes it replaces now (`prepare` leaves that to the block's fate).
    ///
    /// With `staleAt`, the batch also lists under that height every stored node the
    /// update replaces (`staleKey`), for `StatePruner`; without it they are kept unlisted,
    /// for ever (a tree nobody prunes).
    public func update(root: Hash, changes: [Change], staleAt height: UInt64?) throws(StateError) -> (root: Hash, batch: WriteBatch) {
        let prepared = try prepare(root: root, changes: changes, staleAt: height)
        committed(prepared.nodes)
        return (prepared.root, prepared.batch)
    }

    /// The internal nodes an update put in the node cache and the cached nodes of its base
    /// it replaced. Which of them the cache keeps depends on whether the block commits
    /// (`committed`) or is abandoned (`abandoned`): deciding at the update, as it once
    /// did, left an abandoned proposal's nodes in the cache and the committed nodes it
    /// would have replaced out of it, for the next block to read from disk
    /// (docs/benchmarks.md, session 19).
    public struct CachedNodes: Sendable {
        public internal(set) var written: [StateNodeRef] = []
        var replaced: [StateNodeRef] = []
    }

    /// An update whose block is not yet committed.
    public struct Prepared: Sendable {
        public var root: Hash
        public var batch: WriteBatch
        public var nodes: CachedNodes
    }

    /// What `apply` collects beside the new subtree.
    private struct Output {
        var writes = WriteBatch()
        /// Every stored node replaced, when the update lists them for the pruner.
        var stale: [StateNodeRef]?
        var cached = CachedNodes()
        /// Whether the cache keeps the nodes the update replaces until the block's fate is
        /// known (else it drops them at once).
        var keepsReplaced = true
    }

    /// More than the cache bytes a written key adds: at 10 million keys a key rewrites
    /// about 3.5 internal nodes of some 450 bytes each (docs/benchmarks.md).
    static let cachedBytesPerWriteMax = 2_048

    /// Applies `changes` to the tree under `root`, as `update` does, for a block whose fate
    /// is not known yet: the caller tells the tree at the end (`committed` or `abandoned`).
    /// Nothing is written here: the caller commits the batch together with the block, so
    /// state and ledger move atomically.
    public func prepare(root: Hash, changes: [Change], staleAt height: UInt64?) throws(StateError) -> Prepared {
        var updates: [Update] = []
        updates.reserveCapacity(changes.count)
        var seen = Set<Hash>()
        // The last change to a key wins; later in `changes` means later in the block.
        for change in changes.reversed() {
            guard change.key.count <= ProtocolLimits.stateKeyBytesMax else {
                throw StateError(.keyTooLarge, "state key of \(change.key.count) bytes")
            }
            if let value = change.value, value.count > ProtocolLimits.stateValueBytesMax {
                throw StateError(.valueTooLarge, "state value of \(value.count) bytes")
            }
            let keyHash = hasher.hash(.stateKey, change.key)
            if seen.insert(keyHash).inserted {
                updates.append(Update(keyHash: keyHash, key: change.key, value: change.value))
            }
        }
        updates.sort { $0.keyHash < $1.keyHash }
        let version = versions.next()
        let oldRoot = try child(root)
        var reads = NodeReads()
        if cache?.lastUpdateMissed.load(ordering: .relaxed) ?? true { try prefetch(oldRoot, updates, into: &reads) }
        // Only an update that lists what it replaces collects it.
        var output = Output(stale: height == nil ? nil : [])
        // A block too large for the room left in the cache (tens of thousands of writes
        // with the cache near its budget) makes room as it goes, as the replaced nodes
        // would otherwise push out the current tree's: the cost is that, if the block is
        // abandoned, the next one reads those nodes back from the store.
        if let cache { output.keepsReplaced = cache.bytes + changes.count * Self.cachedBytesPerWriteMax <= cache.capacityBytes }
        let newRoot: StateNode.Child
        do {
            newRoot = try apply(oldRoot, depth: 0, updates[...], version, &output, &reads, ahead: false)
        } catch {
            // A node lost from the store ends the update part way: the nodes it had built
            // belong to no block, so no commit or abandonment would take them out.
            cache?.remove(output.cached.written)
            throw error
        }
        cache?.lastUpdateMissed.store(reads.fromStore > 0, ordering: .relaxed)
        if reads.fromStore > 0 { cache?.readFromStore.add(reads.fromStore, ordering: .relaxed) }
        if newRoot.kind != .empty, newRoot != oldRoot {
            var entry = CanonicalWriter(capacity: 9)
            entry.u8(newRoot.kind.rawValue)
            entry.u64(newRoot.version)
            output.writes.put(Self.rootKey(newRoot.hash), entry.bytes)
        }
        if let height {
            for ref in output.stale ?? [] { output.writes.put(Self.staleKey(height: height, ref), []) }
        }
        var last = CanonicalWriter(capacity: 8)
        last.u64(version)
        output.writes.put(Self.versionKey, last.bytes)
        return Prepared(root: newRoot.hash, batch: output.writes, nodes: output.cached)
    }

    /// The block of a prepared update committed: the cache forgets the nodes it replaced,
    /// which only an older root reads again.
    public func committed(_ nodes: CachedNodes) {
        cache?.remove(nodes.replaced)
    }

    /// The block of a prepared update will not commit: the cache forgets the nodes it
    /// wrote, which nothing will read.
    public func abandoned(_ nodes: CachedNodes) {
        cache?.remove(nodes.written)
    }

    /// The root as a child: the only node no parent names, found through the root index.
    func child(_ root: Hash) throws(StateError) -> StateNode.Child {
        guard root != .zero else { return .empty }
        let entry: [UInt8]?
        do { entry = try store.get(Self.rootKey(root)) } catch { throw StateError(.storage, error.description) }
        guard let entry else { throw StateError(.missingNode, "state root \(root) is not in the store") }
        var reader = CanonicalReader(entry)
        let kind: StateNode.Kind
        let version: UInt64
        do {
            let tag = try reader.u8("root kind")
            guard let known = StateNode.Kind(rawValue: tag), known != .empty else {
                throw CodecError.unknownTag(field: "root kind", tag: tag)
            }
            kind = known
            version = try reader.u64("root version")
            try reader.finish()
        } catch { throw StateError(.corruptNode, "state root \(root): \(error)") }
        let ref = StateNodeRef(version: version, hash: root)
        if kind == .leaf, case .leaf(let keyHash, _, _, _) = try load(ref) {
            return StateNode.Child(kind: .leaf, hash: root, version: version, keyHash: keyHash)
        }
        return StateNode.Child(kind: kind, hash: root, version: version)
    }

    /// `depth` counts stored levels (four binary levels each); new nodes are written
    /// under `version`.
    ///
    /// `ahead` is set below the node that asked the cache for its subtree (`readAhead`).
    private func apply(
        _ node: StateNode.Child, depth: Int, _ updates: ArraySlice<Update>, _ version: UInt64, _ output: inout Output,
        _ reads: inout NodeReads, ahead: Bool
    ) throws(StateError) -> StateNode.Child {
        if updates.isEmpty { return node }
        switch node.kind {
        case .empty:
            return try build(depth: depth, updates.filter(\.keepsAKey)[...], version, &output)
        case .leaf:
            var merged = updates.filter(\.keepsAKey)
            if let index = merged.firstIndex(where: { $0.keyHash == node.keyHash }) {
                let valueHash = hasher.hash(.stateValue, merged[index].value!)
                let leafHash = hasher.hash(.stateLeaf, node.keyHash, valueHash)
                if leafHash == node.hash {
                    // The value it has: the stored leaf stays, so no block's subtree names
                    // a copy of it that nothing else would (and no pruner would find).
                    merged[index] = Update(keyHash: node.keyHash, key: [], value: nil, storedLeaf: node)
                } else {
                    merged[index].hashes = (valueHash, leafHash)
                    output.stale?.append(node.ref)
                }
            } else if updates.contains(where: { $0.keyHash == node.keyHash }) {
                output.stale?.append(node.ref)
            } else {
                let index = merged.firstIndex { $0.keyHash > node.keyHash } ?? merged.endIndex
                merged.insert(Update(keyHash: node.keyHash, key: [], value: nil, storedLeaf: node), at: index)
            }
            return try build(depth: depth, merged[...], version, &output)
        case .internalNode:
            var children = StateNode.Children(repeating: .empty)
            var inner = StateNode.InnerHashes(repeating: .zero)
            let hasInner = try loadChildren(node.ref, into: &children, inner: &inner, reads: &reads)
            let readsAhead = !ahead && updates.count <= Self.aheadSpan
            if readsAhead { readAhead(&children, updates, depth: depth) }
            var touched: UInt16 = 0
            var start = updates.startIndex
            let staleBelow = output.stale?.count ?? 0
            let replacedBelow = output.cached.replaced.count
            while start < updates.endIndex {
                let (slot, end) = Self.slotRun(updates, from: start, depth: depth)
                children[slot] = try apply(
                    children[slot], depth: depth + 1, updates[start..<end], version, &output, &reads, ahead: ahead || readsAhead)
                touched |= 1 << UInt16(slot)
                start = end
            }
            let subtree = fold(&children, 0, StateNode.fanout, &inner, reuse: hasInner ? ~touched : 0)
            // Writes that leave the subtree as it was keep the stored node, and with it every
            // node below (none can have changed under an unchanged hash; a pruned live node
            // would lose state, so the list is cut back all the same).
            guard subtree.hash != node.hash else {
                output.stale?.removeSubrange(staleBelow...)
                output.cached.replaced.removeSubrange(replacedBelow...)
                return node
            }
            if let cache {
                if output.keepsReplaced { output.cached.replaced.append(node.ref) } else { cache.remove(node.ref) }
            }
            output.stale?.append(node.ref)
            return stored(subtree, &children, &inner, version, &output)
        }
    }

    /// The most updates under a node whose subtree `readAhead` asks the cache for: at 10
    /// million keys and blocks of 4,000 writes, a node two levels down (sixteen writes,
    /// about sixty nodes below it).
    static let aheadSpan = 32

    /// Asks the cache for the internal nodes an update of `updates` under a node with
    /// `children` at `depth` will find, a level at a time, each level's together
    /// (`StateNodeCache.prefetch`), decoding each level to learn the next: the depth-first
    /// walk that follows then finds them near. A node not cached ends its path here
    /// (`apply` reads it from the store).
    private func readAhead(_ children: inout StateNode.Children, _ updates: ArraySlice<Update>, depth: Int) {
        guard let cache else { return }
        var level: [PathNode] = []
        Self.internalChildren(&children, updates, updates.indices, depth: depth, into: &level)
        var depth = depth + 1
        while !level.isEmpty {
            cache.prefetch(level.map(\.ref))
            var next: [PathNode] = []
            for entry in level {
                _ = cache.withBytes(of: entry.ref) { Self.internalChildren(encoded: $0, updates, entry.updates, depth: depth, into: &next) }
            }
            level = next
            depth += 1
        }
    }

    /// The canonical subtree at `depth` holding exactly `leaves` (sorted by key hash).
    private func build(depth: Int, _ leaves: ArraySlice<Update>, _ version: UInt64, _ output: inout Output)
        throws(StateError) -> StateNode.Child
    {
        guard let first = leaves.first else { return .empty }
        if leaves.count == 1 {
            if let stored = first.storedLeaf { return stored }
            if let value = first.value {
                let (valueHash, leafHash) = first.hashes ?? {
                    let valueHash = hasher.hash(.stateValue, value)
                    return (valueHash, hasher.hash(.stateLeaf, first.keyHash, valueHash))
                }()
                let leaf = StateNode.Child(kind: .leaf, hash: leafHash, version: version, keyHash: first.keyHash)
                output.writes.put(
                    Self.nodeKey(leaf.ref),
                    StateNode.encodedLeaf(keyHash: first.keyHash, valueHash: valueHash, key: first.key, value: value))
                return leaf
            }
        }
        // Two distinct 256-bit key hashes differ within 64 steps of four bits.
        precondition(depth < 64, "distinct key hashes share all 256 bits")
        var children = StateNode.Children(repeating: .empty)
        var start = leaves.startIndex
        while start < leaves.endIndex {
            let (slot, end) = Self.slotRun(leaves, from: start, depth: depth)
            children[slot] = try build(depth: depth + 1, leaves[start..<end], version, &output)
            start = end
        }
        var inner = StateNode.InnerHashes(repeating: .zero)
        let folded = fold(&children, 0, StateNode.fanout, &inner, reuse: 0)
        return stored(folded, &children, &inner, version, &output)
    }

    /// The subtree `folded` from `children` (and `inner`, as `fold` left them): stored as
    /// a node of `version` when it is internal; an empty subtree or a lone leaf (lifted to
    /// keep the form canonical) needs no node. `children` and `inner` are inout only so
    /// that they are passed in place: borrowed, the 1.3 KB of slots were copied on every call.
    private func stored(
        _ folded: StateNode.Child, _ children: inout StateNode.Children, _ inner: inout StateNode.InnerHashes, _ version: UInt64,
        _ output: inout Output
    ) -> StateNode.Child {
        var subtree = folded
        guard subtree.kind == .internalNode else { return subtree }
        subtree.version = version
        let bytes = StateNode.encoded(children: &children)
        output.writes.put(Self.nodeKey(subtree.ref), bytes)
        if let cache {
            var full = true
            for slot in 0..<StateNode.fanout where children[slot].kind == .empty { full = false }
            cache.insert(bytes, subtree.ref, inner: full ? inner : nil)
            output.cached.written.append(subtree.ref)
        }
        return subtree
    }

    /// The binary subtree over `children[low ..< low + width]` (width a power of two).
    ///
    /// A subtree inside the node whose slots are all in `reuse` is taken from `inner`,
    /// which must then hold the inner hashes of a full node with those children; every
    /// subtree hashed is written to `inner`, so that after a whole node's fold `inner`
    /// holds its inner hashes if it is full. `children` is inout, though only read, for
    /// the reason given at `stored`.
    private func fold(
        _ children: inout StateNode.Children, _ low: Int, _ width: Int, _ inner: inout StateNode.InnerHashes, reuse: UInt16
    ) -> StateNode.Child {
        var occupied: UInt16 = 0
        for slot in low..<low + width where children[slot].kind != .empty { occupied |= 1 << UInt16(slot) }
        return fold(&children, low, width, &inner, reuse: reuse, occupied: occupied)
    }

    /// `fold` with the slots holding a subtree (`occupied`) known. A range with no subtree
    /// is empty and one with a lone leaf is that leaf, lifted, so neither is walked: the
    /// nodes at the bottom of a large tree hold a few leaves in sixteen slots (at 10
    /// million keys, about seven in the nodes of the sixth stored level and two in those
    /// below), and walked slot by slot their folds took 31 steps each. A full node is
    /// walked as before, so its inner hashes are all written.
    private func fold(
        _ children: inout StateNode.Children, _ low: Int, _ width: Int, _ inner: inout StateNode.InnerHashes, reuse: UInt16,
        occupied: UInt16
    ) -> StateNode.Child {
        if width == 1 { return children[low] }
        let slots = UInt16(truncatingIfNeeded: (1 << width) - 1) << UInt16(low)
        let present = occupied & slots
        if present == 0 { return .empty }
        if present & (present - 1) == 0, case let only = children[present.trailingZeroBitCount], only.kind == .leaf { return only }
        // The subtree's number in a heap numbering the node 1 (see `StateNode.InnerHashes`).
        let heap = StateNode.fanout / width + low / width
        if heap > 1, reuse & slots == slots { return StateNode.Child(kind: .internalNode, hash: inner[heap - 2]) }
        let half = width / 2
        let joined = join(
            fold(&children, low, half, &inner, reuse: reuse, occupied: occupied),
            fold(&children, low + half, half, &inner, reuse: reuse, occupied: occupied))
        if heap > 1 { inner[heap - 2] = joined.hash }
        return joined
    }

    /// A binary internal node over two children, lifting a lone leaf.
    private func join(_ left: StateNode.Child, _ right: StateNode.Child) -> StateNode.Child {
        switch (left.kind, right.kind) {
        case (.empty, .empty): return .empty
        case (.leaf, .empty): return left
        case (.empty, .leaf): return right
        default: return StateNode.Child(kind: .internalNode, hash: hasher.hash(.stateNode, left.hash, right.hash))
        }
    }
}
