import CivitasCore
import CivitasCrypto
@testable import CivitasState
import CivitasStorage
import CivitasTesting
import Testing

/// Nodes stored under the version that wrote them (ADR 0011).
@Suite struct StateVersionTests {
    let hasher = ChainHasher(.sha256)
    func key(_ i: Int) -> [UInt8] { Array("key-\(i)".utf8) }

    func nodeKeys(_ batch: WriteBatch) -> [[UInt8]] {
        batch.operations.compactMap {
            guard case .put(let key, _) = $0, key.first == StorePrefix.stateNode.rawValue else { return nil }
            return key
        }
    }

    /// An update's nodes share one version, and the next update's all sort after them:
    /// RocksDB receives them in key order, block after block.
    @Test func eachUpdateWritesItsNodesAfterThePreviousOnes() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        var root = Hash.zero
        var previousLast: [UInt8]? = nil
        for round in 0..<5 {
            let (next, batch) = try tree.update(
                root: root, changes: (0..<300).map { .init(key: key((round * 131 + $0 * 7) % 2_000), value: [UInt8(round)]) })
            let keys = nodeKeys(batch)
            #expect(keys.count > 10)
            #expect(Set(keys.map { $0[1..<9] }).count == 1, "one version per update")
            let sorted = keys.sorted { $0.lexicographicallyPrecedes($1) }
            if let previousLast { #expect(previousLast.lexicographicallyPrecedes(sorted.first!)) }
            previousLast = sorted.last
            try store.write(batch, durable: true)
            root = next
        }
        // A tree opened on the store later goes on after the last version written.
        let reopened = StateTree(store: store, hasher: hasher)
        let (_, batch) = try reopened.update(root: root, changes: [.init(key: key(1), value: [9])])
        #expect(previousLast!.lexicographicallyPrecedes(nodeKeys(batch).min { $0.lexicographicallyPrecedes($1) }!))
    }

    /// Forks staged on a shared cache and set of versions, one of each pair committed and
    /// the other abandoned, leave a store whose every committed root reads back whole,
    /// equal to a plain tree fed the committed changes alone. Small key and value spaces
    /// make forks build identical subtrees under different versions.
    @Test(arguments: [UInt64(3), 17, 2_026]) func abandonedForksNeverLeaveTheCacheNamingUnwrittenNodes(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let store = MemoryStore()
        let cache = StateNodeCache(capacityBytes: 64 << 10)
        let versions = StateVersions(last: 0)
        let reference = MemoryStore()
        let plain = StateTree(store: reference, hasher: hasher)
        var root = Hash.zero
        var expectedRoot = Hash.zero
        var committedRoots: [Hash] = []
        func changes() -> [StateTree.Change] {
            (0..<Int(random.next() % 12 + 1)).map { _ in
                let value = random.next() % 4
                return .init(key: key(Int(random.next() % 40)), value: value == 0 ? nil : [UInt8(value)])
            }
        }
        for round in 0..<40 {
            // Two chains of two blocks from the committed root, the second block of each
            // on its uncommitted parent; sometimes both chains start with the same block.
            var chains: [[(changes: [StateTree.Change], batch: WriteBatch, root: Hash)]] = []
            let shared = random.next() % 3 == 0 ? changes() : nil
            for _ in 0..<2 {
                var layers: [WriteBatch] = []
                var chain: [(changes: [StateTree.Change], batch: WriteBatch, root: Hash)] = []
                var tip = root
                for block in 0..<2 {
                    let blockChanges = block == 0 ? (shared ?? changes()) : changes()
                    let view = StateTree(
                        store: OverlayStore(base: store, layers: layers), hasher: hasher, cache: cache, versions: versions)
                    let (next, batch) = try view.update(root: tip, changes: blockChanges)
                    chain.append((blockChanges, batch, next))
                    layers.append(batch)
                    tip = next
                }
                chains.append(chain)
            }
            let committed = chains[Int(random.next() % 2)]
            for block in committed {
                try store.write(block.batch, durable: true)
                let batch: WriteBatch
                (expectedRoot, batch) = try plain.update(root: expectedRoot, changes: block.changes)
                try reference.write(batch, durable: true)
                #expect(block.root == expectedRoot, "seed \(seed) round \(round)")
                committedRoots.append(block.root)
            }
            root = committed.last!.root
            // The next round stages on the committed root through the cache, which still
            // holds nodes of the abandoned chain.
            _ = try StateTree(store: store, hasher: hasher, cache: cache, versions: versions)
                .update(root: root, changes: [.init(key: key(0), value: [7])])
        }
        // Every committed root reads back from the store alone, entry for entry.
        let uncached = StateTree(store: store, hasher: hasher)
        for committedRoot in committedRoots {
            let entries = try uncached.entries(root: committedRoot, after: nil, limit: 100, bytesMax: 1 << 20)
            let expected = try plain.entries(root: committedRoot, after: nil, limit: 100, bytesMax: 1 << 20)
            #expect(entries == expected, "seed \(seed)")
        }
    }

    @Test func aRootMissingFromTheIndexIsAClearError() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let (root, batch) = try tree.update(root: .zero, changes: (0..<20).map { .init(key: key($0), value: [1]) })
        var withoutIndex = WriteBatch()
        for case .put(let key, let value) in batch.operations where key.first != StorePrefix.stateRoot.rawValue {
            withoutIndex.put(key, value)
        }
        try store.write(withoutIndex, durable: true)
        #expect {
            try tree.prove(key(1), root: root)
        } throws: { error in
            (error as? StateError)?.code == .missingNode && "\(error)".contains("state root")
        }
    }

    @Test func aCorruptRootEntryIsCorruptionNotACrash() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let (root, batch) = try tree.update(root: .zero, changes: (0..<20).map { .init(key: key($0), value: [1]) })
        try store.write(batch, durable: true)
        for bad: [UInt8] in [[], [2], [0, 0, 0, 0, 0, 0, 0, 0, 1], [7, 0, 0, 0, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0, 0, 0, 1, 5]] {
            var overwrite = WriteBatch()
            overwrite.put(StateTree.rootKey(root), bad)
            try store.write(overwrite, durable: true)
            #expect {
                try tree.prove(key(1), root: root)
            } throws: { error in
                (error as? StateError)?.code == .corruptNode
            }
        }
    }

    /// A node opening its store reads the last version written; a damaged entry is
    /// reported as corruption, never taken for a version.
    @Test func theLastVersionIsReadBackAndADamagedOneRefused() throws {
        let store = MemoryStore()
        #expect(try StateVersions(store: store).next() == 1)
        let (_, batch) = try StateTree(store: store, hasher: hasher, versions: StateVersions(last: 41))
            .update(root: .zero, changes: [.init(key: key(1), value: [1])])
        try store.write(batch, durable: true)
        #expect(try StateVersions(store: store).next() == 43)
        for bad: [UInt8] in [[], [1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 0, 9]] {
            var damage = WriteBatch()
            damage.put(StateTree.versionKey, bad)
            try store.write(damage, durable: true)
            #expect {
                try StateVersions(store: store)
            } throws: { error in
                (error as? StateError)?.code == .corruptNode
            }
        }
    }

    @Test func aTreeOfOneLeafIsFoundThroughItsRootEntry() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: hasher)
        let (root, batch) = try tree.update(root: .zero, changes: [.init(key: key(1), value: [1])])
        try store.write(batch, durable: true)
        #expect(try tree.get(key(1), root: root) == [1])
        let (two, next) = try tree.update(root: root, changes: [.init(key: key(2), value: [2])])
        try store.write(next, durable: true)
        #expect(try tree.get(key(1), root: two) == [1])
        #expect(try tree.get(key(2), root: two) == [2])
    }
}
