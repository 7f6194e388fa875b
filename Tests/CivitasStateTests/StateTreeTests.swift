import CivitasCore
import CivitasCrypto
@testable import CivitasState
import CivitasStorage
import CivitasTesting
import Synchronization
import Testing

@Suite struct StateTreeTests {
    func apply(_ tree: StateTree, _ store: MemoryStore, root: Hash, _ changes: [StateTree.Change]) throws -> Hash {
        let (newRoot, batch) = try tree.update(root: root, changes: changes)
        try store.write(batch, durable: true)
        return newRoot
    }

    func key(_ i: Int) -> [UInt8] { Array("key-\(i)".utf8) }

    @Test(arguments: [HashSuiteID.sha256, .sm3])
    func inclusionAndExclusionProofsVerify(_ suite: HashSuiteID) throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: ChainHasher(suite))
        let root = try apply(tree, store, root: .zero, (0..<200).map { .init(key: key($0), value: [UInt8($0 % 256)]) })
        for i in stride(from: 0, to: 200, by: 13) {
            let proof = try tree.prove(key(i), root: root)
            #expect(proof.value == [UInt8(i % 256)])
            #expect(proof.verify(root: root, using: ChainHasher(suite)))
        }
        for i in 200..<230 {
            let proof = try tree.prove(key(i), root: root)
            #expect(proof.value == nil)
            #expect(proof.verify(root: root, using: ChainHasher(suite)))
        }
    }

    @Test func forgedProofsFail() throws {
        let store = MemoryStore()
        let hasher = ChainHasher(.sha256)
        let tree = StateTree(store: store, hasher: hasher)
        let root = try apply(tree, store, root: .zero, (0..<50).map { .init(key: key($0), value: [1]) })
        var proof = try tree.prove(key(3), root: root)
        proof.value = [2]
        #expect(!proof.verify(root: root, using: hasher))
        var absent = try tree.prove(key(3), root: root)
        absent.value = nil  // claim absence of a present key
        #expect(!absent.verify(root: root, using: hasher))
        var exclusion = try tree.prove(key(999), root: root)
        if !exclusion.siblings.isEmpty { exclusion.siblings[0] = .zero }
        #expect(!exclusion.verify(root: root, using: hasher))
    }

    @Test func rootDependsOnlyOnContentNotHistory() throws {
        let hasher = ChainHasher(.sha256)
        let storeA = MemoryStore()
        let treeA = StateTree(store: storeA, hasher: hasher)
        var rootA = Hash.zero
        for i in 0..<40 { rootA = try apply(treeA, storeA, root: rootA, [.init(key: key(i), value: [1])]) }
        for i in 20..<40 { rootA = try apply(treeA, storeA, root: rootA, [.init(key: key(i), value: nil)]) }

        let storeB = MemoryStore()
        let treeB = StateTree(store: storeB, hasher: hasher)
        let rootB = try apply(treeB, storeB, root: .zero, (0..<20).reversed().map { .init(key: key($0), value: [1]) })
        #expect(rootA == rootB)

        var rootC = rootB
        for i in 0..<20 { rootC = try apply(treeB, storeB, root: rootC, [.init(key: key(i), value: nil)]) }
        #expect(rootC == StateTree.emptyRoot)
    }

    @Test func oldRootsStayReadable() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: ChainHasher(.sha256))
        let first = try apply(tree, store, root: .zero, [.init(key: key(1), value: [1])])
        let second = try apply(tree, store, root: first, [.init(key: key(1), value: [2]), .init(key: key(2), value: [3])])
        #expect(try tree.get(key(1), root: first) == [1])
        #expect(try tree.get(key(2), root: first) == nil)
        #expect(try tree.get(key(1), root: second) == [2])
    }

    @Test func lastChangeToAKeyWins() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: ChainHasher(.sha256))
        let root = try apply(tree, store, root: .zero, [.init(key: key(1), value: [1]), .init(key: key(1), value: [9])])
        #expect(try tree.get(key(1), root: root) == [9])
    }

    @Test func oversizeKeysAreRefused() {
        let tree = StateTree(store: MemoryStore(), hasher: ChainHasher(.sha256))
        let big = [UInt8](repeating: 0, count: ProtocolLimits.stateKeyBytesMax + 1)
        #expect(throws: StateError.self) { try tree.update(root: .zero, changes: [.init(key: big, value: [1])]) }
    }

    @Test func missingNodesAreAnError() {
        let tree = StateTree(store: MemoryStore(), hasher: ChainHasher(.sha256))
        #expect(throws: StateError.self) { try tree.prove([1], root: Hash(bytes: [UInt8](repeating: 3, count: 32))) }
    }

    /// Listing a root's entries in pages, resumed after the last key hash of each page,
    /// yields every entry once, in key-hash order, and rebuilds the same root; older
    /// roots list their own entries.
    @Test func entriesListInPagesAndRebuildTheRoot() throws {
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let first = try apply(tree, store, root: .zero, (0..<500).map { .init(key: key($0), value: Array("v\($0)".utf8)) })
        let second = try apply(tree, store, root: first, (0..<100).map { .init(key: key($0 * 5), value: nil) })
        for (root, count) in [(first, 500), (second, 400)] {
            var all: [StateTree.Entry] = []
            var after: Hash?
            var pages = 0
            while true {
                let page = try tree.entries(root: root, after: after, limit: 37, bytesMax: 1 << 20)
                if page.isEmpty { break }
                all += page
                after = hasher.hash(.stateKey, page.last!.key)
                pages += 1
            }
            #expect(all.count == count && pages == (count + 36) / 37)
            let hashes = all.map { hasher.hash(.stateKey, $0.key) }
            #expect(hashes == hashes.sorted() && Set(hashes).count == count)
            let rebuiltStore = MemoryStore()
            let rebuilt = StateTree(store: rebuiltStore, hasher: hasher)
            #expect(try apply(rebuilt, rebuiltStore, root: .zero, all.map { .init(key: $0.key, value: $0.value) }) == root)
        }
        #expect(try tree.entries(root: .zero, after: nil, limit: 10, bytesMax: 100).isEmpty)
        // The byte bound cuts a page early (after the entry that crosses it).
        #expect(try tree.entries(root: first, after: nil, limit: 100, bytesMax: 20).count == 2)
    }
}

/// The stored tree (four binary levels per node) against a plain recursive binary
/// sparse Merkle tree written from the definition: the same roots, the proofs verify,
/// and a node costs what it should.
@Suite struct StateTreeShapeTests {
    let hasher = ChainHasher(.sha256)

    /// The canonical binary root over (key hash, leaf hash) pairs sorted by key hash.
    func referenceRoot(_ leaves: ArraySlice<(Hash, Hash)>, depth: Int) -> (isLeaf: Bool, hash: Hash) {
        guard let first = leaves.first else { return (false, .zero) }
        if leaves.count == 1 { return (true, first.1) }
        let split = leaves.firstIndex { $0.0.bit(depth) } ?? leaves.endIndex
        let left = referenceRoot(leaves[..<split], depth: depth + 1)
        let right = referenceRoot(leaves[split...], depth: depth + 1)
        if left.hash == .zero && right.isLeaf { return right }
        if right.hash == .zero && left.isLeaf { return left }
        return (false, hasher.hash(.stateNode, left.hash, right.hash))
    }

    func referenceRoot(_ model: [[UInt8]: [UInt8]]) -> Hash {
        let leaves = model.map { key, value in
            let keyHash = hasher.hash(.stateKey, key)
            return (keyHash, hasher.hash(.stateLeaf, keyHash, hasher.hash(.stateValue, value)))
        }.sorted { $0.0 < $1.0 }
        return referenceRoot(leaves[...], depth: 0).hash
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func rootsAndProofsMatchThePlainBinaryTree(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        var model: [[UInt8]: [UInt8]] = [:]
        var root = Hash.zero
        for round in 0..<30 {
            // Few keys early (lone leaves, short chains), many later (full nodes), deletes throughout.
            let universe = round < 10 ? 6 : 2_000
            let changes = (0..<Int(random.next() % 60 + 1)).map { _ in
                let key = Array("k\(random.next() % UInt64(universe))".utf8)
                return StateTree.Change(key: key, value: random.chance(0.25) ? nil : [UInt8(truncatingIfNeeded: random.next())])
            }
            for change in changes { model[change.key] = change.value }
            let (newRoot, batch) = try tree.update(root: root, changes: changes)
            try store.write(batch, durable: true)
            root = newRoot
            #expect(root == referenceRoot(model), "seed \(seed) round \(round)")
        }
        for i in 0..<300 {
            let key = Array("k\(i)".utf8)
            let proof = try tree.prove(key, root: root)
            #expect(proof.value == model[key], "seed \(seed) key \(i)")
            #expect(proof.verify(root: root, using: hasher), "seed \(seed) key \(i)")
        }
        let listed = try tree.entries(root: root, after: nil, limit: 10_000, bytesMax: 1 << 30)
        #expect(Dictionary(uniqueKeysWithValues: listed.map { ($0.key, $0.value) }) == model)
    }

    /// A fixed state has a fixed root: the hashes are the chain's, not the storage's.
    @Test func aKnownStateHasItsKnownRoot() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let changes = (0..<100).map { StateTree.Change(key: Array("key-\($0)".utf8), value: Array("value-\($0)".utf8)) }
        let (root, _) = try tree.update(root: .zero, changes: changes)
        #expect(root == referenceRoot(Dictionary(uniqueKeysWithValues: changes.map { ($0.key, $0.value!) })))
        #expect(root.hex == "fca5e3f90e84a86edbf01337e737ac9a95717816fc447590baed98d7faa31cab")
    }

    /// One key written into a state of 4,096 keys writes its leaf and the three or four
    /// stored nodes on its path, not one node per binary level.
    @Test func aWriteCostsOneNodePerFourLevels() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let (root, batch) = try tree.update(
            root: .zero, changes: (0..<4_096).map { .init(key: Array("key-\($0)".utf8), value: [1]) })
        try store.write(batch, durable: true)
        let (_, one) = try tree.update(root: root, changes: [.init(key: Array("key-7".utf8), value: [2])])
        let nodes = one.operations.filter {
            if case .put(let key, _) = $0 { return key.first == StorePrefix.stateNode.rawValue }
            return false
        }
        #expect(nodes.count >= 3 && nodes.count <= 5, "\(nodes.count) nodes written")
        // Beside them: the new root's index entry and the last version written.
        #expect(one.operations.count == nodes.count + 2)
    }

    /// Overwriting keys, inserting new ones beside existing leaves and deleting absent
    /// ones reads internal nodes only: a parent names its leaf children's key hashes.
    @Test func updatesNeverReadALeaf() throws {
        let store = LeafReadCountingStore()
        let tree = StateTree(store: store, hasher: hasher)
        var (root, batch) = try tree.update(root: .zero, changes: (0..<2_000).map { .init(key: Array("key-\($0)".utf8), value: [1]) })
        try store.write(batch, durable: true)
        for round in 0..<5 {
            let changes = (0..<50).map { StateTree.Change(key: Array("key-\(round * 997 + $0 * 31)".utf8), value: $0 % 7 == 0 ? nil : [2]) }
            (root, batch) = try tree.update(root: root, changes: changes)
            try store.write(batch, durable: true)
        }
        #expect(store.leafReads.withLock { $0 } == 0)
        #expect(try tree.get(Array("key-31".utf8), root: root) == [2])
        #expect(store.leafReads.withLock { $0 } == 1)
    }

    @Test func malformedNodesAreCorruptionNotACrash() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let (root, batch) = try tree.update(root: .zero, changes: (0..<40).map { .init(key: [UInt8($0)], value: [1]) })
        try store.write(batch, durable: true)
        for bad: [UInt8] in [[3, 0, 0], [3, 0, 1, 0] + [UInt8](repeating: 0, count: 32), [3, 0, 1, 2], [1, 0], [9]] {
            var overwrite = WriteBatch()
            overwrite.put(StateTree.nodeKey(try tree.child(root).ref), bad)
            try store.write(overwrite, durable: true)
            #expect(throws: StateError.self) { try tree.prove([5], root: root) }
            #expect {
                try tree.update(root: root, changes: [.init(key: [5], value: [2])])
            } throws: { error in
                (error as? StateError)?.code == .corruptNode
            }
        }
    }
}

@Suite struct StateNodeCacheTests {
    func key(_ i: Int) -> [UInt8] { Array("key-\(i)".utf8) }

    @Test func aCachedTreeGivesTheSameRootsAndProofsAsAnUncachedOne() throws {
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let plain = StateTree(store: store, hasher: hasher)
        // A tiny cache, so entries are evicted all through the test.
        let cache = StateNodeCache(capacityBytes: 8_192)
        let cached = StateTree(store: store, hasher: hasher, cache: cache)
        var root = Hash.zero
        for round in 0..<20 {
            let changes = (0..<40).map { StateTree.Change(key: key((round * 17 + $0 * 7) % 300), value: $0 % 9 == 0 ? nil : [UInt8(round), UInt8($0)]) }
            let (expected, batch) = try plain.update(root: root, changes: changes)
            let (actual, _) = try cached.update(root: root, changes: changes)
            #expect(actual == expected)
            try store.write(batch, durable: true)
            root = expected
            #expect(cache.bytes <= 8_192)
        }
        for i in stride(from: 0, to: 300, by: 11) {
            #expect(try cached.prove(key(i), root: root) == (try plain.prove(key(i), root: root)))
        }
    }

    @Test func anUpdateOnAnUncommittedRootReadsItsNodesFromTheCache() throws {
        let hasher = ChainHasher(.sha256)
        let cache = StateNodeCache()
        let tree = StateTree(store: MemoryStore(), hasher: hasher, cache: cache)
        // The first batch is never written: the second update finds the root through a
        // view of its root entry alone and reads the nodes from the cache, which is sound
        // because a version is never reused in one process.
        let (root, first) = try tree.update(root: .zero, changes: (0..<40).map { .init(key: key($0), value: [1]) })
        var rootEntry = WriteBatch()
        for case .put(let key, let value) in first.operations where key.first == StorePrefix.stateRoot.rawValue {
            rootEntry.put(key, value)
        }
        let view = OverlayStore(base: MemoryStore(), layers: [rootEntry])
        let (next, _) = try StateTree(store: view, hasher: hasher, cache: cache).update(root: root, changes: [.init(key: key(3), value: [2])])
        let reference = StateTree(store: MemoryStore(), hasher: hasher)
        #expect(next == (try reference.update(root: .zero, changes: (0..<40).map { .init(key: key($0), value: $0 == 3 ? [2] : [1]) })).root)
        let uncached = StateTree(store: view, hasher: hasher)
        #expect(throws: StateError.self) { try uncached.update(root: root, changes: [.init(key: key(3), value: [2])]) }
    }

    @Test func anUpdateDropsTheNodesItReplacesAndLeavesAreNotCached() throws {
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let cache = StateNodeCache()
        let tree = StateTree(store: store, hasher: hasher, cache: cache)
        var root = Hash.zero
        for round in 0..<10 {
            let batch: WriteBatch
            (root, batch) = try tree.update(root: root, changes: (0..<200).map { .init(key: key($0), value: [UInt8(round)]) })
            try store.write(batch, durable: true)
        }
        // Exactly the internal nodes of the current tree remain: the versions the
        // updates replaced are gone, and no leaf was cached.
        let internalNodes = try internalRefs(tree, store, root: root)
        #expect(internalNodes.count > 1)
        #expect(cache.count == internalNodes.count)
    }

    /// The refs of the internal nodes of the tree under `root`.
    func internalRefs(_ tree: StateTree, _ store: some KeyValueStore, root: Hash) throws -> Set<StateNodeRef> {
        var refs = Set<StateNodeRef>()
        var pending = [try tree.child(root).ref]
        while let ref = pending.popLast() {
            guard case .internalNode(let children) = try StateNode(decoding: try #require(try store.get(StateTree.nodeKey(ref))))
            else { continue }
            refs.insert(ref)
            for slot in 0..<StateNode.fanout where children[slot].kind == .internalNode { pending.append(children[slot].ref) }
        }
        return refs
    }

    /// Competing proposals on one root, some extended by a child before the round ends;
    /// one line commits and the rest are abandoned. The cache then holds exactly the
    /// committed tree's internal nodes: none an abandoned block wrote, and every committed
    /// node an abandoned block would have replaced (so the next block reads nothing from
    /// disk).
    /// A block that rewrites the whole state, with the cache holding the tree and a
    /// quarter more: the replaced nodes make room as the update goes, so nothing of the
    /// committed tree is pushed out and the next block reads nothing from the store.
    @Test func aBlockLargerThanTheCacheRoomLeavesTheCommittedTreeCached() throws {
        let hasher = ChainHasher(.sha256)
        let keys = 0..<2_000
        let measuring = StateNodeCache()
        _ = try StateTree(store: MemoryStore(), hasher: hasher, cache: measuring).update(
            root: .zero, changes: keys.map { .init(key: key($0), value: [0]) })
        let store = MemoryStore()
        let cache = StateNodeCache(capacityBytes: measuring.bytes * 5 / 4)
        let tree = StateTree(store: store, hasher: hasher, cache: cache)
        var (root, batch) = try tree.update(root: .zero, changes: keys.map { .init(key: key($0), value: [0]) })
        try store.write(batch, durable: true)
        #expect(cache.bytes == measuring.bytes)
        let block = try tree.prepare(root: root, changes: keys.map { .init(key: key($0), value: [1]) }, staleAt: nil)
        try store.write(block.batch, durable: true)
        tree.committed(block.nodes)
        root = block.root
        let expected = try internalRefs(tree, store, root: root)
        #expect(expected.allSatisfy { cache.node($0) != nil })
        #expect(cache.count == expected.count)
        (root, batch) = try tree.update(root: root, changes: keys.filter { $0 % 3 == 0 }.map { .init(key: key($0), value: [2]) })
        #expect(cache.nodesReadFromStore == 0)
    }

    @Test(arguments: [UInt64(2), 19, 57]) func theCacheFollowsTheBlocksThatCommit(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let cache = StateNodeCache()
        // Views of one state share its versions, as a node's do (`StateVersions`).
        let versions = StateVersions(last: 0)
        let tree = StateTree(store: store, hasher: hasher, cache: cache, versions: versions)
        var (root, batch) = try tree.update(root: .zero, changes: (0..<400).map { .init(key: key($0), value: [0]) })
        try store.write(batch, durable: true)
        func changes(_ round: Int) -> [StateTree.Change] {
            (0..<30).map { _ in
                let i = Int(random.next() % 500)
                return .init(key: key(i), value: random.next() % 7 == 0 ? nil : [UInt8(round), UInt8(i & 0xFF)])
            }
        }
        for round in 1...12 {
            var proposals: [(first: StateTree.Prepared, second: StateTree.Prepared?)] = []
            for _ in 0..<(2 + Int(random.next() % 2)) {
                let first = try tree.prepare(root: root, changes: changes(round), staleAt: nil)
                var second: StateTree.Prepared?
                if random.next() % 2 == 0 {
                    let view = OverlayStore(base: store, layers: [first.batch])
                    second = try StateTree(store: view, hasher: hasher, cache: cache, versions: versions).prepare(root: first.root, changes: changes(round), staleAt: nil)
                }
                proposals.append((first, second))
            }
            let winner = Int(random.next() % UInt64(proposals.count))
            for (index, proposal) in proposals.enumerated() where index != winner {
                tree.abandoned(proposal.first.nodes)
                if let second = proposal.second { tree.abandoned(second.nodes) }
            }
            let line = [proposals[winner].first] + (proposals[winner].second.map { [$0] } ?? [])
            for block in line {
                try store.write(block.batch, durable: true)
                tree.committed(block.nodes)
                root = block.root
            }
            let expected = try internalRefs(tree, store, root: root)
            #expect(cache.count == expected.count, "seed \(seed), round \(round)")
            #expect(expected.allSatisfy { cache.node($0) != nil }, "seed \(seed), round \(round)")
        }
        let before = cache.nodesReadFromStore
        (root, batch) = try tree.update(root: root, changes: changes(13))
        #expect(cache.nodesReadFromStore == before, "seed \(seed)")
    }

    /// With nothing cached, an update reads the internal nodes it needs a stored level at
    /// a time, each level's together, none alone; the root is the one an uncached tree
    /// computes, and the same update again finds every node in the cache.
    @Test func aColdUpdateReadsItsNodesALevelAtATime() throws {
        let hasher = ChainHasher(.sha256)
        let store = LeafReadCountingStore()
        let (root, batch) = try StateTree(store: store.base, hasher: hasher)
            .update(root: .zero, changes: (0..<5_000).map { .init(key: key($0), value: [1]) })
        try store.base.write(batch, durable: true)
        let changes = (0..<300).map { StateTree.Change(key: key($0 * 13), value: [2]) }
        let (expected, _) = try StateTree(store: store.base, hasher: hasher).update(root: root, changes: changes)

        let cache = StateNodeCache()
        let cold = StateTree(store: store, hasher: hasher, cache: cache)
        let (updated, written) = try cold.update(root: root, changes: changes)
        #expect(updated == expected)
        #expect(store.reads.withLock { $0 } == 0)
        // One read per stored level holding a node on the keys' paths: 5,000 keys fill
        // levels 0 to 3, and a few pairs of keys share longer prefixes.
        let many = store.manyReads.withLock { $0 }
        #expect((4...8).contains(many.calls), "\(many.calls) reads of many")
        #expect(many.nodes > 300, "\(many.nodes) nodes read")
        #expect(cache.nodesReadFromStore == many.nodes)
        try store.base.write(written, durable: true)
        _ = try cold.update(root: updated, changes: changes.map { .init(key: $0.key, value: [4]) })
        #expect(store.manyReads.withLock { $0 }.nodes == many.nodes)
        #expect(store.reads.withLock { $0 } == 0)
        #expect(cache.nodesReadFromStore == many.nodes)

        // After an update that found every node cached, the next does not read ahead: the
        // old root's nodes, which the first update dropped, are read as met, one by one.
        let missedBefore = cache.lastUpdateMissed.load(ordering: .relaxed)
        #expect(!missedBefore)
        let (again, _) = try cold.update(root: root, changes: changes)
        #expect(again == expected)
        #expect(store.reads.withLock { $0 } > 0 && store.manyReads.withLock { $0 }.calls == many.calls)
        #expect(cache.nodesReadFromStore == many.nodes + store.reads.withLock { $0 })
        // That update missed, so the one after reads ahead again.
        let missed = cache.lastUpdateMissed.load(ordering: .relaxed)
        #expect(missed)
        let readsBefore = store.reads.withLock { $0 }
        _ = try cold.update(root: root, changes: (0..<300).map { StateTree.Change(key: key($0 * 13 + 1), value: [5]) })
        #expect(store.manyReads.withLock { $0 }.calls > many.calls)
        #expect(store.reads.withLock { $0 } == readsBefore)
    }

    /// A tree of 500 keys whose store (and `cache`) has lost one of the root's internal
    /// children: the first in key-hash order, or the last (an update then builds the
    /// other subtrees' new nodes before it meets the loss).
    func treeWithALostSubtree(cache: StateNodeCache? = nil, last: Bool) throws -> (tree: StateTree, store: MemoryStore, root: Hash) {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: ChainHasher(.sha256), cache: cache)
        let (root, batch) = try tree.update(root: .zero, changes: (0..<500).map { .init(key: key($0), value: [1]) })
        try store.write(batch, durable: true)
        guard case .internalNode(let children) = try StateNode(decoding: try #require(try store.get(StateTree.nodeKey(try tree.child(root).ref))))
        else { throw StateError(.corruptNode, "the root is not internal") }
        let subtrees = (0..<StateNode.fanout).map { children[$0] }.filter { $0.kind == .internalNode }
        let lost = try #require(last ? subtrees.last : subtrees.first)
        var deletion = WriteBatch()
        deletion.delete(StateTree.nodeKey(lost.ref))
        try store.write(deletion, durable: true)
        cache?.remove(lost.ref)
        return (tree, store, root)
    }

    /// A node an update needs that the store lost is a missing-node error, not a crash.
    @Test func aLostNodeIsAMissingNodeError() throws {
        let (tree, _, root) = try treeWithALostSubtree(last: false)
        let everyKey = (0..<500).map { StateTree.Change(key: key($0), value: [3]) }
        #expect {
            try tree.update(root: root, changes: everyKey)
        } throws: { error in
            (error as? StateError)?.code == .missingNode
        }
    }

    /// An update that stops at a lost node leaves in the cache none of the nodes it had
    /// built before it: they belong to no block, so nothing else would take them out.
    @Test func anUpdateThatFailsLeavesNoNodeOfItsOwnCached() throws {
        let cache = StateNodeCache()
        let (tree, store, root) = try treeWithALostSubtree(cache: cache, last: true)
        let cachedBefore = Set(cache.refs)
        #expect {
            try tree.prepare(root: root, changes: (0..<500).map { .init(key: key($0), value: [3]) }, staleAt: nil)
        } throws: { error in
            (error as? StateError)?.code == .missingNode
        }
        let added = Set(cache.refs).subtracting(cachedBefore).count
        #expect(added == 0, "nodes of the failed update cached")
        let unstored = try cache.refs.filter { try store.get(StateTree.nodeKey($0)) == nil }.count
        #expect(unstored == 0, "cached nodes not in the store")
    }

    @Test func warmingReadsTheInternalNodesTopDownWithinTheBudget() throws {
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let writer = StateTree(store: store, hasher: hasher, cache: StateNodeCache())
        let (root, batch) = try writer.update(root: .zero, changes: (0..<3_000).map { .init(key: key($0), value: [1]) })
        try store.write(batch, durable: true)

        // The whole tree fits: afterwards an update reads nothing from the store.
        let cache = StateNodeCache()
        let read = StateTree(store: store, hasher: hasher, cache: cache).warm(root: root)
        #expect(read > 16 && cache.count == read, "\(read) \(cache.count)")
        let counting = LeafReadCountingStore()
        try counting.base.write(batch, durable: true)
        let warmed = StateTree(store: counting, hasher: hasher, cache: cache)
        _ = try warmed.update(root: root, changes: [.init(key: key(7), value: [2])])
        #expect(counting.reads.withLock { $0 } == 0)

        // A small budget: warming stops before it would evict, with the root kept.
        let small = StateNodeCache(capacityBytes: 20 * (StateNodeCache.entryOverhead + 600))
        let partial = StateTree(store: store, hasher: hasher, cache: small).warm(root: root)
        #expect(partial > 0 && partial < read && small.bytes <= small.capacityBytes)
        #expect(small.node(try writer.child(root).ref) != nil)
        // And it stops when asked.
        #expect(StateTree(store: store, hasher: hasher, cache: StateNodeCache()).warm(root: root) { true } == 0)
    }

    /// Refs crowded onto a few home positions of the cache's index (their first words
    /// differ only in the top byte, their versions take three values), so that probe runs
    /// are long and every removal moves entries back: the cache must agree with a
    /// dictionary through inserts, removals and lookups, and, once its budget is small,
    /// hold only what it says it holds.
    @Test(arguments: [UInt64(3), 17, 101]) func theIndexAgreesWithADictionaryWhenRefsCollide(seed: UInt64) {
        func ref(_ i: Int) -> StateNodeRef {
            var bytes = [UInt8](repeating: 0, count: 32)
            bytes[0] = UInt8(i % 5)
            bytes[8] = UInt8(i & 0xFF)
            bytes[9] = UInt8(i >> 8)
            return StateNodeRef(version: UInt64(i % 3), hash: Hash(bytes: bytes))
        }
        func content(_ i: Int, _ round: Int) -> [UInt8] { [UInt8(i & 0xFF), UInt8(i >> 8), UInt8(round & 0xFF)] }
        var random = SeededRandom(seed: seed)
        let refs = 1_500
        let roomy = StateNodeCache(capacityBytes: 2 * refs * (3 + StateNodeCache.entryOverhead))
        var model: [StateNodeRef: [UInt8]] = [:]
        for round in 0..<12_000 {
            let i = Int(random.next() % UInt64(refs))
            switch random.next() % 4 {
            case 0, 1:
                // A ref already present keeps its bytes (an entry is never stale).
                roomy.insert(content(i, round), ref(i))
                if model[ref(i)] == nil { model[ref(i)] = content(i, round) }
            case 2:
                roomy.remove(ref(i))
                model[ref(i)] = nil
            default:
                #expect(roomy.node(ref(i)) == model[ref(i)], "seed \(seed), round \(round), ref \(i)")
            }
        }
        #expect(roomy.count == model.count, "seed \(seed)")
        for i in 0..<refs { #expect(roomy.node(ref(i)) == model[ref(i)], "seed \(seed), ref \(i)") }

        let small = StateNodeCache(capacityBytes: 200 * (3 + StateNodeCache.entryOverhead))
        for round in 0..<6_000 {
            let i = Int(random.next() % UInt64(refs))
            if random.next() % 3 == 0 { small.remove(ref(i)) } else { small.insert(content(i, round), ref(i)) }
        }
        let held = (0..<refs).filter { small.node(ref($0)) != nil }
        #expect(held.count == small.count && small.count <= 200, "seed \(seed): \(held.count) found, \(small.count) counted")
        for i in held { #expect(small.node(ref(i))?.prefix(2) == content(i, 0).prefix(2)[...], "seed \(seed), ref \(i)") }
    }

    /// Refs spread as real ones are, so that most words of a probe run sit within 15 of
    /// their home and removals move them back by the distance each word carries: the cache
    /// must agree with a dictionary through inserts, removals and lookups.
    @Test(arguments: [UInt64(4), 29]) func theIndexAgreesWithADictionaryWhenRefsSpread(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let refs = (0..<4_000).map { _ in
            StateNodeRef(version: random.next() % 50, hash: Hash(bytes: (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }))
        }
        // Small enough that the index stays between a quarter and a half full.
        let cache = StateNodeCache(capacityBytes: 4 * refs.count * (2 + StateNodeCache.entryOverhead))
        var model: [StateNodeRef: [UInt8]] = [:]
        for round in 0..<40_000 {
            let i = Int(random.next() % UInt64(refs.count))
            switch random.next() % 5 {
            case 0, 1:
                cache.insert([UInt8(i & 0xFF), UInt8(i >> 8)], refs[i])
                model[refs[i]] = [UInt8(i & 0xFF), UInt8(i >> 8)]
            case 2, 3:
                cache.remove(refs[i])
                model[refs[i]] = nil
            default:
                #expect(cache.node(refs[i]) == model[refs[i]], "seed \(seed), round \(round), ref \(i)")
            }
        }
        #expect(cache.count == model.count, "seed \(seed)")
        for (i, ref) in refs.enumerated() { #expect(cache.node(ref) == model[ref], "seed \(seed), ref \(i)") }
    }

    /// A full node keeps the hashes of its inner levels in the cache, and an update that
    /// changes a few of its children reuses the others' (`StateNode.InnerHashes`): the
    /// roots and proofs must be those of an uncached tree through updates, a deletion that
    /// empties a slot of the full root (no inner hashes then), and the insertion that
    /// fills it again.
    @Test(arguments: [UInt64(5), 23]) func fullNodesReuseTheirInnerHashesAndAgreeWithAnUncachedTree(seed: UInt64) throws {
        let hasher = ChainHasher(.sha256)
        // Two keys for each slot of the root, so that the root is full.
        var bySlot = [[[UInt8]]](repeating: [], count: StateNode.fanout)
        var candidate = 0
        while bySlot.contains(where: { $0.count < 2 }) {
            let slot = hasher.hash(.stateKey, key(candidate)).nibble(0)
            if bySlot[slot].count < 2 { bySlot[slot].append(key(candidate)) }
            candidate += 1
        }
        let store = MemoryStore()
        let plain = StateTree(store: store, hasher: hasher)
        let cache = StateNodeCache()
        let cached = StateTree(store: store, hasher: hasher, cache: cache)
        var root = Hash.zero
        func apply(_ changes: [StateTree.Change]) throws {
            let (expected, batch) = try plain.update(root: root, changes: changes)
            let (actual, _) = try cached.update(root: root, changes: changes)
            #expect(actual == expected, "seed \(seed)")
            try store.write(batch, durable: true)
            root = expected
        }
        func rootHasInner() throws -> Bool { cache.hasInner(try cached.child(root).ref) }

        try apply(bySlot.joined().map { .init(key: $0, value: [1]) })
        #expect(try rootHasInner())
        try apply([.init(key: bySlot[3][0], value: [2])])
        #expect(try rootHasInner())
        try apply(bySlot[5].map { .init(key: $0, value: nil) })
        #expect(try !rootHasInner())
        try apply([.init(key: bySlot[5][1], value: [3])])
        #expect(try rootHasInner())

        var random = SeededRandom(seed: seed)
        let keys = Array(bySlot.joined()) + (candidate..<candidate + 200).map(key)
        for round in 0..<60 {
            let changes = (0..<(1 + Int(random.next() % 3))).map { _ in
                let key = keys[Int(random.next() % UInt64(keys.count))]
                return StateTree.Change(key: key, value: random.next() % 4 == 0 ? nil : [UInt8(round)])
            }
            try apply(changes)
        }
        for key in keys.prefix(40) { #expect(try cached.prove(key, root: root) == (try plain.prove(key, root: root))) }
    }

    /// Entries above the arena's largest block come from the system allocator; both
    /// kinds keep their bytes through removals and the reuse of freed blocks.
    /// An update asks the cache for the nodes of each small subtree ahead of walking it
    /// (`StateTree.aheadSpan`): with blocks below and above that span, at depths where it
    /// starts at the root and further down, the roots and proofs are those of an uncached
    /// tree, and asking for refs the cache lacks, or has dropped, changes nothing.
    @Test(arguments: [UInt64(7), 41]) func readingAheadLeavesRootsAsAnUncachedTreeHasThem(seed: UInt64) throws {
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let plain = StateTree(store: store, hasher: hasher)
        let cache = StateNodeCache()
        let cached = StateTree(store: store, hasher: hasher, cache: cache)
        var random = SeededRandom(seed: seed)
        var root = Hash.zero
        var dropped: [StateNodeRef] = []
        for (round, size) in [3_000, 5, StateTree.aheadSpan, StateTree.aheadSpan + 1, 300, 1].enumerated() {
            let changes = (0..<size).map { _ in
                StateTree.Change(key: key(Int(random.next() % 4_000)), value: random.next() % 8 == 0 ? nil : [UInt8(round)])
            }
            let before = try cached.child(root)
            let (expected, batch) = try plain.update(root: root, changes: changes)
            let (actual, _) = try cached.update(root: root, changes: changes)
            #expect(actual == expected, "seed \(seed), round \(round)")
            try store.write(batch, durable: true)
            if before.kind == .internalNode { dropped.append(before.ref) }
            root = expected
        }
        cache.prefetch(dropped + [StateNodeRef(version: 999, hash: hasher.hash(.stateKey, [1]))])
        StateNodeCache().prefetch([StateNodeRef(version: 1, hash: root)])
        for index in stride(from: 0, to: 4_000, by: 397) {
            let proof = try cached.prove(key(index), root: root)
            #expect(proof.verify(root: root, using: hasher))
            #expect(proof.value == (try plain.get(key(index), root: root)))
        }
    }

    @Test func entriesOfEverySizeKeepTheirBytes() {
        let cache = StateNodeCache(capacityBytes: 64 << 20)
        let sizes = [1, 63, 64, 100, 700, 1_171, NodeArena.largest, NodeArena.largest + 1, 5_000]
        func ref(_ i: Int, _ round: Int) -> StateNodeRef { StateNodeRef(version: UInt64(round), hash: Hash(bytes: [UInt8](repeating: UInt8(i), count: 32))) }
        func content(_ i: Int, _ round: Int) -> [UInt8] { (0..<sizes[i]).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i &+ round) } }
        for round in 0..<3 {
            for i in sizes.indices { cache.insert(content(i, round), ref(i, round)) }
            for i in sizes.indices { #expect(cache.node(ref(i, round)) == content(i, round), "size \(sizes[i]), round \(round)") }
            for i in sizes.indices where i % 2 == round % 2 { cache.remove(ref(i, round)) }
        }
        #expect(cache.count == sizes.count * 3 - (sizes.count + 1) / 2 * 2 - sizes.count / 2)
    }

    @Test func aFullCacheEvictsWithinItsBudgetAndKeepsWhatIsUsed() {
        let cache = StateNodeCache(capacityBytes: 10 * (100 + StateNodeCache.entryOverhead))
        let hashes = (0..<30).map { StateNodeRef(version: 1, hash: Hash(bytes: [UInt8](repeating: UInt8($0), count: 32))) }
        cache.insert([UInt8](repeating: 3, count: 100), hashes[0])
        for hash in hashes.dropFirst() {
            _ = cache.node(hashes[0])
            cache.insert([UInt8](repeating: 3, count: 100), hash)
            #expect(cache.bytes <= cache.capacityBytes)
        }
        #expect(cache.count == 10)
        #expect(cache.node(hashes[0]) != nil)
        #expect(cache.node(hashes[29]) != nil)
        #expect(cache.node(hashes[1]) == nil)
        // An entry above the whole budget is not kept, and evicts nothing.
        cache.insert([UInt8](repeating: 3, count: cache.capacityBytes), hashes[1])
        #expect(cache.count == 10)
    }
}

/// A memory store that counts reads of tree nodes, and of leaf nodes (tag 2).
final class LeafReadCountingStore: KeyValueStore, Sendable {
    let base = MemoryStore()
    let leafReads = Mutex(0)
    let reads = Mutex(0)

    func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        if key.first == StorePrefix.stateNode.rawValue { reads.withLock { $0 += 1 } }
        let value = try base.get(key)
        if key.first == StorePrefix.stateNode.rawValue, value?.first == 2 { leafReads.withLock { $0 += 1 } }
        return value
    }

    /// Reads of many keys together: how many calls, and how many tree-node keys in them.
    let manyReads = Mutex((calls: 0, nodes: 0))

    func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] {
        let nodes = keys.count { $0.first == StorePrefix.stateNode.rawValue }
        manyReads.withLock {
            $0.calls += 1
            $0.nodes += nodes
        }
        return try base.getMany(keys)
    }

    func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) { try base.write(batch, durable: durable) }

    func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try base.scan(prefix: prefix, start: start, limit: limit)
    }
}
