import CivitasCore
import CivitasCrypto
@testable import CivitasState
import CivitasStorage
import CivitasTesting
import Testing

extension StateTree {
    /// An update whose replaced nodes nobody prunes.
    func update(root: Hash, changes: [Change]) throws(StateError) -> (root: Hash, batch: WriteBatch) {
        try update(root: root, changes: changes, staleAt: nil)
    }
}

/// A chain of state updates, one per height, written as a node commits blocks, with the
/// state each height should have.
private struct PrunedChain {
    var store: CrashableStore
    let hasher = ChainHasher(.sha256)
    var roots: [Hash] = [.zero]
    var expected: [[[UInt8]: [UInt8]]] = [[:]]
    var random: SeededRandom

    init(seed: UInt64) {
        store = CrashableStore()
        random = SeededRandom(seed: seed)
    }

    var height: UInt64 { UInt64(roots.count - 1) }

    /// A block of puts (some rewriting the value a key has), deletions (some of keys
    /// not there), over a few hundred keys, committed durably.
    mutating func commitBlock() throws {
        var state = expected.last!
        var changes: [StateTree.Change] = []
        for _ in 0..<Int(random.next() % 40) {
            let key = Array("key-\(random.next() % 300)".utf8)
            switch random.next() % 5 {
            case 0:
                changes.append(.init(key: key, value: nil))
                state[key] = nil
            case 1 where state[key] != nil:
                changes.append(.init(key: key, value: state[key]))
            default:
                let value = [UInt8(truncatingIfNeeded: random.next()), UInt8(truncatingIfNeeded: random.next())]
                changes.append(.init(key: key, value: value))
                state[key] = value
            }
        }
        let tree = StateTree(store: store, hasher: hasher)
        let (root, batch) = try tree.update(root: roots.last!, changes: changes, staleAt: height + 1)
        try store.write(batch, durable: true)
        roots.append(root)
        expected.append(state)
    }

    /// Every stored tree node, by key.
    func storedNodes() throws -> Set<[UInt8]> {
        Set(try store.scan(prefix: [StorePrefix.stateNode.rawValue], limit: .max).map(\.key))
    }

    /// The keys of the nodes the state under `root` is made of.
    func reachable(from root: Hash) throws -> Set<[UInt8]> {
        let tree = StateTree(store: store, hasher: hasher)
        var out = Set<[UInt8]>()
        var pending = [try tree.child(root)]
        while let child = pending.popLast() {
            guard child.kind != .empty else { continue }
            let key = StateTree.nodeKey(child.ref)
            out.insert(key)
            guard let bytes = try store.get(key) else { throw StateError(.missingNode, "\(child.ref)") }
            if case .internalNode(let children) = try StateNode(decoding: bytes) {
                for slot in 0..<StateNode.fanout { pending.append(children[slot]) }
            }
        }
        return out
    }

    /// The states the pruner keeps read whole and as written; older ones are refused; the
    /// store holds exactly the nodes of the kept states, none more.
    func checkKept(_ pruner: StatePruner) throws {
        let tree = StateTree(store: store, hasher: hasher)
        let oldest = pruner.oldestKept
        var live = Set<[UInt8]>()
        for height in Int(oldest)...Int(self.height) {
            let entries = try tree.entries(root: roots[height], after: nil, limit: .max, bytesMax: .max)
            #expect(Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.value) }) == expected[height], "height \(height)")
            live.formUnion(try reachable(from: roots[height]))
        }
        #expect(try storedNodes() == live)
        for height in 0..<oldest {
            let error = #expect(throws: StateError.self) { try pruner.check(height: height) }
            #expect(error?.code == .pruned)
        }
    }
}

@Suite struct StatePrunerTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func keptStatesReadWholeAndNothingElseIsStored(seed: UInt64) throws {
        var chain = PrunedChain(seed: seed)
        let pruner = try StatePruner(store: chain.store, keptHeights: 16)
        for _ in 0..<80 {
            try chain.commitBlock()
            if pruner.retain(committed: chain.height) {
                while try pruner.prune(limit: 50) > 0 {}
            }
        }
        #expect(pruner.oldestKept == chain.height - 16)
        #expect(pruner.heightsBehind == 0)
        try chain.checkKept(pruner)
    }

    /// Pages lost in crashes (written without a sync, as the node's pruner writes them)
    /// are done again by the pruner of the restarted store; what the store records as the
    /// oldest kept height never claims a state that is gone.
    @Test(arguments: [4, 5, 6] as [UInt64])
    func crashesWhilePruningLoseNothingKept(seed: UInt64) throws {
        var chain = PrunedChain(seed: seed)
        var pruner = try StatePruner(store: chain.store, keptHeights: 16)
        var crashes = 0
        for _ in 0..<90 {
            try chain.commitBlock()
            pruner.retain(committed: chain.height)
            while try pruner.prune(limit: 7) > 0 {
                guard chain.random.next() % 6 == 0 else { continue }
                chain.store = try chain.store.afterCrash()
                pruner = try StatePruner(store: chain.store, keptHeights: 16)
                crashes += 1
                // Every state from the recorded oldest on is still there after the crash.
                let tree = StateTree(store: chain.store, hasher: chain.hasher)
                for height in Int(pruner.oldestKept)...Int(chain.height) {
                    _ = try tree.entries(root: chain.roots[height], after: nil, limit: .max, bytesMax: .max)
                }
                pruner.retain(committed: chain.height)
            }
        }
        #expect(crashes > 0, "seed \(seed): no crash happened")
        try chain.checkKept(pruner)
    }

    /// A snapshot being served holds its height whole past the retention.
    @Test func aHeldHeightStaysWhole() throws {
        var chain = PrunedChain(seed: 7)
        let pruner = try StatePruner(store: chain.store, keptHeights: 16)
        for _ in 0..<30 { try chain.commitBlock() }
        pruner.retain(committed: chain.height, held: 5)
        while try pruner.prune() > 0 {}
        #expect(pruner.oldestKept == 5)
        try chain.checkKept(pruner)
        for _ in 0..<10 { try chain.commitBlock() }
        pruner.retain(committed: chain.height)
        while try pruner.prune() > 0 {}
        #expect(pruner.oldestKept == chain.height - 16)
        try chain.checkKept(pruner)
    }

    /// Nodes of old states a read put in the node cache leave it when they are pruned.
    @Test func prunedNodesLeaveTheCache() throws {
        var chain = PrunedChain(seed: 9)
        let cache = StateNodeCache()
        let pruner = try StatePruner(store: chain.store, keptHeights: 16, cache: cache)
        for _ in 0..<40 { try chain.commitBlock() }
        let reader = StateTree(store: chain.store, hasher: chain.hasher, cache: cache)
        for height in 0...Int(chain.height) {
            _ = try reader.entries(root: chain.roots[height], after: nil, limit: .max, bytesMax: .max)
        }
        let cachedBefore = cache.count
        pruner.retain(committed: chain.height)
        while try pruner.prune() > 0 {}
        let stored = try chain.storedNodes()
        #expect(cache.count < cachedBefore)
        #expect(cache.refs.allSatisfy { stored.contains(StateTree.nodeKey($0)) })
    }

    @Test func anArchiveKeepsEveryState() throws {
        var chain = PrunedChain(seed: 8)
        let pruner = try StatePruner(store: chain.store, keptHeights: 0)
        for _ in 0..<40 {
            try chain.commitBlock()
            #expect(!pruner.retain(committed: chain.height))
        }
        #expect(try pruner.prune() == 0)
        #expect(pruner.oldestKept == 0)
        let tree = StateTree(store: chain.store, hasher: chain.hasher)
        for height in 0...Int(chain.height) {
            let entries = try tree.entries(root: chain.roots[height], after: nil, limit: .max, bytesMax: .max)
            #expect(entries.count == chain.expected[height].count)
        }
    }

    /// What each kind of write lists: a changed key its old leaf and the nodes above; the
    /// value a key already has nothing at all (the stored leaf stays, no copy is written);
    /// a deletion the leaf; a deletion of an absent key nothing.
    @Test func anUpdateListsExactlyTheNodesItReplaces() throws {
        let store = MemoryStore()
        let tree = StateTree(store: store, hasher: ChainHasher(.sha256))
        func key(_ i: Int) -> [UInt8] { Array("key-\(i)".utf8) }
        let (root, first) = try tree.update(root: .zero, changes: (0..<40).map { .init(key: key($0), value: [1]) }, staleAt: 1)
        try store.write(first, durable: true)
        #expect(first.operations.allSatisfy { if case .put(let key, _) = $0 { key.first != StorePrefix.staleStateNode.rawValue } else { true } })
        func listed(_ batch: WriteBatch) -> [[UInt8]] {
            batch.operations.compactMap {
                guard case .put(let key, _) = $0, key.first == StorePrefix.staleStateNode.rawValue else { return nil }
                return key
            }
        }
        func writtenNodes(_ batch: WriteBatch) -> Int {
            batch.operations.filter { if case .put(let key, _) = $0 { key.first == StorePrefix.stateNode.rawValue } else { false } }.count
        }
        let (same, sameBatch) = try tree.update(root: root, changes: [.init(key: key(3), value: [1])], staleAt: 2)
        #expect(same == root)
        #expect(listed(sameBatch).isEmpty)
        #expect(writtenNodes(sameBatch) == 0)
        let (_, absent) = try tree.update(root: root, changes: [.init(key: key(99), value: nil)], staleAt: 2)
        #expect(listed(absent).isEmpty)

        let (changed, changedBatch) = try tree.update(root: root, changes: [.init(key: key(3), value: [2])], staleAt: 2)
        #expect(changed != root)
        let replaced = listed(changedBatch).compactMap(StatePruner.decode)
        #expect(replaced.allSatisfy { $0.height == 2 })
        // The old path: every stored node from the root down to the leaf, each once.
        #expect(replaced.count == writtenNodes(changedBatch))
        #expect(Set(replaced.map(\.ref)).count == replaced.count)
        #expect(replaced.contains { $0.ref.hash == root })
        for entry in replaced { #expect(try store.get(StateTree.nodeKey(entry.ref)) != nil) }

        let (_, deletion) = try tree.update(root: root, changes: [.init(key: key(3), value: nil)], staleAt: 2)
        #expect(listed(deletion).count >= 2)
    }

    /// A damaged entry in the list stops the pruner with a typed error and deletes nothing.
    @Test func aDamagedEntryIsRefused() throws {
        var chain = PrunedChain(seed: 9)
        for _ in 0..<30 { try chain.commitBlock() }
        var batch = WriteBatch()
        batch.put([StorePrefix.staleStateNode.rawValue, 0, 0, 0], [])
        try chain.store.write(batch, durable: true)
        let before = try chain.storedNodes()
        let pruner = try StatePruner(store: chain.store, keptHeights: 16)
        pruner.retain(committed: chain.height)
        let error = #expect(throws: StateError.self) { try pruner.prune() }
        #expect(error?.code == .corruptNode)
        #expect(try chain.storedNodes() == before)
    }

    @Test func aDamagedOldestKeptRecordIsRefused() throws {
        let store = MemoryStore()
        var batch = WriteBatch()
        batch.put(StatePruner.oldestKeptKey, [1, 2, 3])
        try store.write(batch, durable: true)
        let error = #expect(throws: StateError.self) { try StatePruner(store: store, keptHeights: 16) }
        #expect(error?.code == .corruptNode)
    }
}
