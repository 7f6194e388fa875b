import CivitasStorage
import Synchronization
import Testing

/// A memory store that counts its reads and can run something in the middle of one.
private final class ObservedStore: KeyValueStore {
    let inner = MemoryStore()
    let reads = Atomic<Int>(0)
    let duringRead = Mutex<(@Sendable () -> Void)?>(nil)

    func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]? {
        reads.add(1, ordering: .relaxed)
        let value = try inner.get(key)
        if let hook = duringRead.withLock({ hook in defer { hook = nil }; return hook }) { hook() }
        return value
    }

    let manyReads = Atomic<Int>(0)
    func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] {
        manyReads.add(1, ordering: .relaxed)
        return try inner.getMany(keys)
    }

    func write(_ batch: WriteBatch, durable: Bool) throws(StorageError) { try inner.write(batch, durable: durable) }

    func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try inner.scan(prefix: prefix, start: start, limit: limit)
    }
}

private func value(_ name: String) -> [UInt8] { StorePrefix.stateValue.key(Array(name.utf8)) }

private func batch(_ operations: [(key: [UInt8], value: [UInt8]?)]) -> WriteBatch {
    var batch = WriteBatch()
    for operation in operations {
        if let value = operation.value { batch.put(operation.key, value) } else { batch.delete(operation.key) }
    }
    return batch
}

@Suite struct ValueCachingStoreTests {
    @Test func readsAnswerWhatTheBaseHoldsAndRepeatsComeFromMemory() throws {
        let base = ObservedStore()
        try base.write(batch([(value("a"), [1]), (StorePrefix.block.key([1]), [9])]), durable: false)
        let store = ValueCachingStore(base: base, prefix: .stateValue)
        #expect(try store.get(value("a")) == [1])
        #expect(try store.get(value("a")) == [1])
        #expect(try store.get(value("missing")) == nil)
        #expect(try store.get(value("missing")) == nil)
        #expect(base.reads.load(ordering: .relaxed) == 2)
        // Other prefixes are not cached.
        #expect(try store.get(StorePrefix.block.key([1])) == [9])
        #expect(try store.get(StorePrefix.block.key([1])) == [9])
        #expect(base.reads.load(ordering: .relaxed) == 4)
    }

    /// Other prefixes' keys go to the base's `getMany` together; with this prefix's among
    /// them each key goes through the cache, which then holds the values read.
    @Test func getManyPassesOtherPrefixesToTheBaseAndCachesValues() throws {
        let base = ObservedStore()
        try base.write(batch([(value("a"), [1]), (StorePrefix.block.key([1]), [9]), (StorePrefix.block.key([2]), [8])]), durable: false)
        let store = ValueCachingStore(base: base, prefix: .stateValue)
        #expect(try store.getMany([StorePrefix.block.key([1]), StorePrefix.block.key([3]), StorePrefix.block.key([2])]) == [[9], nil, [8]])
        #expect(base.manyReads.load(ordering: .relaxed) == 1 && base.reads.load(ordering: .relaxed) == 0)
        #expect(try store.getMany([value("a"), StorePrefix.block.key([2]), value("b")]) == [[1], [8], nil])
        #expect(base.manyReads.load(ordering: .relaxed) == 1 && base.reads.load(ordering: .relaxed) == 3)
        #expect(try store.get(value("a")) == [1])
        #expect(try store.get(value("b")) == nil)
        #expect(base.reads.load(ordering: .relaxed) == 3)
    }

    @Test func writesPassThroughAndReplaceWhatWasCached() throws {
        let base = ObservedStore()
        let store = ValueCachingStore(base: base, prefix: .stateValue)
        #expect(try store.get(value("a")) == nil)
        try store.write(batch([(value("a"), [2]), (value("b"), [3])]), durable: true)
        #expect(try base.get(value("a")) == [2])
        let readsBefore = base.reads.load(ordering: .relaxed)
        #expect(try store.get(value("a")) == [2])
        try store.write(batch([(value("a"), nil)]), durable: false)
        #expect(try store.get(value("a")) == nil)
        #expect(base.reads.load(ordering: .relaxed) == readsBefore)
        // "b" was written but never read: its first read goes to the base.
        #expect(try store.get(value("b")) == [3])
        #expect(try store.get(value("b")) == [3])
        #expect(base.reads.load(ordering: .relaxed) == readsBefore + 1)
    }

    /// Keys written and never read take no room, so they cannot push out the ones read
    /// with every transaction (a sender's nonce) however many a block writes.
    @Test func writtenKeysNobodyReadAreNotKept() throws {
        let base = ObservedStore()
        try base.write(batch([(value("sender"), [1])]), durable: false)
        let store = ValueCachingStore(base: base, prefix: .stateValue, entriesMax: 4, bytesMax: 1_000, valueBytesMax: 16)
        #expect(try store.get(value("sender")) == [1])
        for index in 0..<100 {
            try store.write(batch([(value("k\(index)"), [UInt8(index)]), (value("sender"), [UInt8(index)])]), durable: false)
        }
        #expect(store.count == 1)
        let readsBefore = base.reads.load(ordering: .relaxed)
        #expect(try store.get(value("sender")) == [99])
        #expect(base.reads.load(ordering: .relaxed) == readsBefore)
        #expect(try store.get(value("k7")) == [7])
        #expect(base.reads.load(ordering: .relaxed) == readsBefore + 1)
    }

    /// A read of the base that a write overtakes must not leave its older value cached.
    @Test func aWriteDuringARead() throws {
        let base = ObservedStore()
        try base.write(batch([(value("a"), [1])]), durable: false)
        let store = ValueCachingStore(base: base, prefix: .stateValue)
        base.duringRead.withLock { hook in
            hook = { try? store.write(batch([(value("a"), [5])]), durable: false) }
        }
        #expect(try store.get(value("a")) == [1])
        #expect(try store.get(value("a")) == [5])
    }

    @Test func memoryIsBounded() throws {
        let base = ObservedStore()
        for index in 0..<50 { try base.write(batch([(value("k\(index)"), [UInt8(index)])]), durable: false) }
        let store = ValueCachingStore(base: base, prefix: .stateValue, entriesMax: 4, bytesMax: 1_000, valueBytesMax: 16)
        for index in 0..<50 { #expect(try store.get(value("k\(index)")) == [UInt8(index)]) }
        #expect(store.count <= 8)
        #expect(try store.get(value("k0")) == [0])

        // A value above the limit is not kept, and the smaller one it replaces is forgotten.
        #expect(try store.get(value("big")) == nil)
        try store.write(batch([(value("big"), [UInt8](repeating: 7, count: 17))]), durable: false)
        let readsBefore = base.reads.load(ordering: .relaxed)
        #expect(try store.get(value("big")) == [UInt8](repeating: 7, count: 17))
        #expect(try store.get(value("big")) == [UInt8](repeating: 7, count: 17))
        #expect(base.reads.load(ordering: .relaxed) == readsBefore + 2)

        let byBytes = ValueCachingStore(base: base, prefix: .stateValue, entriesMax: 1_000, bytesMax: 40, valueBytesMax: 16)
        for index in 0..<20 { try base.write(batch([(value("key\(index)"), [UInt8](repeating: 1, count: 10))]), durable: false) }
        for index in 0..<20 { _ = try byBytes.get(value("key\(index)")) }
        #expect(byBytes.count <= 4)
    }
}
