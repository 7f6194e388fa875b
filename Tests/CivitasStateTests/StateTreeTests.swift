import CivitasCore
import CivitasCrypto
import CivitasState
import CivitasStorage
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

@Suite struct StateNodeCacheTests {
    func key(_ i: Int) -> [UInt8] { Array("key-\(i)".utf8) }

    @Test func aCachedTreeGivesTheSameRootsAndProofsAsAnUncachedOne() throws {
        let hasher = ChainHasher(.sha256)
        let store = MemoryStore()
        let plain = StateTree(store: store, hasher: hasher)
        // A tiny cache, so generations turn over many times during the test.
        let cache = StateNodeCache(capacity: 50)
        let cached = StateTree(store: store, hasher: hasher, cache: cache)
        var root = Hash.zero
        for round in 0..<20 {
            let changes = (0..<40).map { StateTree.Change(key: key((round * 17 + $0 * 7) % 300), value: $0 % 9 == 0 ? nil : [UInt8(round), UInt8($0)]) }
            let (expected, batch) = try plain.update(root: root, changes: changes)
            let (actual, _) = try cached.update(root: root, changes: changes)
            #expect(actual == expected)
            try store.write(batch, durable: true)
            root = expected
            #expect(cache.count <= 100)
        }
        for i in stride(from: 0, to: 300, by: 11) {
            #expect(try cached.prove(key(i), root: root) == (try plain.prove(key(i), root: root)))
        }
    }

    @Test func nodesOfAnUncommittedUpdateAreServedFromTheCacheByContent() throws {
        let hasher = ChainHasher(.sha256)
        let cache = StateNodeCache()
        let tree = StateTree(store: MemoryStore(), hasher: hasher, cache: cache)
        // The batch is never written: reads at the new root come from the cache alone,
        // which is sound because a node's hash names its content.
        let (root, _) = try tree.update(root: .zero, changes: (0..<10).map { .init(key: key($0), value: [1]) })
        #expect(try tree.get(key(3), root: root) == [1])
        let uncached = StateTree(store: MemoryStore(), hasher: hasher)
        #expect(throws: StateError.self) { try uncached.get(key(3), root: root) }
    }
}
