/// An ordered byte-key store with atomic batches: what the ledger, the state tree and
/// the node's metadata are written into.
///
/// Implementations: `RocksDBStore` for nodes, `MemoryStore` for tests and simulation.
/// Both pass the same suite (`StorageSuite` in the tests).
public protocol KeyValueStore: AnyObject, Sendable {
    func get(_ key: [UInt8]) throws(StorageError) -> [UInt8]?
    /// The values of `keys`, in their order: as `get` of each, read concurrently where
    /// the store can (a block's tree update may need thousands of nodes from disk, and
    /// read one after another each waits out the disk's latency alone).
    func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?]
    /// Applies every operation of `batch` or none. With `durable`, returns only once
    /// the batch would survive a power cut (fsync of the write-ahead log).
    func write(_ batch: WriteBatch, durable: Bool) throws(StorageError)
    /// Makes every batch written so far durable, as if the last had been written with
    /// `durable`: several writes then cost one fsync.
    func sync() throws(StorageError)
    /// Entries whose key starts with `prefix`, in ascending key order, starting at
    /// `start` (inclusive, must itself start with `prefix`) and at most `limit` of them.
    func scan(prefix: [UInt8], start: [UInt8]?, limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])]
    /// The background work the store still owes (flushes, compactions), for a store that
    /// does such work; nil for one that does not.
    var backlog: StoreBacklog? { get }
}

/// What an LSM store's background work still owes: a store that has just taken a large
/// write (a bulk import, a long catch-up) may compact for minutes after it, and writes and
/// reads cost more until it has (more files to look in, the disk shared with the
/// compactions). Operators see it in `/metrics` and `/v1/status`; `civitas bench
/// --settle-max` waits for it to clear before a run.
public struct StoreBacklog: Sendable, Equatable, Codable {
    /// RocksDB's estimate of the bytes compactions must rewrite to bring every level
    /// within its target size, over all column families.
    public var pendingCompactionBytes: UInt64
    /// Files in level 0 over all column families: each is searched on a read.
    public var level0Files: Int
    public var runningCompactions: Int
    public var runningFlushes: Int

    public init(pendingCompactionBytes: UInt64, level0Files: Int, runningCompactions: Int, runningFlushes: Int) {
        self.pendingCompactionBytes = pendingCompactionBytes
        self.level0Files = level0Files
        self.runningCompactions = runningCompactions
        self.runningFlushes = runningFlushes
    }

    /// Nothing owed and nothing running.
    public var isSettled: Bool { pendingCompactionBytes == 0 && runningCompactions == 0 && runningFlushes == 0 }
}

public struct WriteBatch: Sendable {
    public enum Operation: Sendable, Equatable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])
    }

    public private(set) var operations: [Operation] = []
    public private(set) var byteCount = 0

    public init() {}

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        operations.append(.put(key: key, value: value))
        byteCount += key.count + value.count
    }

    public mutating func delete(_ key: [UInt8]) {
        operations.append(.delete(key: key))
        byteCount += key.count
    }

    public mutating func append(contentsOf other: WriteBatch) {
        operations.append(contentsOf: other.operations)
        byteCount += other.byteCount
    }

    public var isEmpty: Bool { operations.isEmpty }
}

public struct StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case openFailed = "storage.open_failed"
        case readFailed = "storage.read_failed"
        case writeFailed = "storage.write_failed"
        case corrupt = "storage.corrupt"
        case closed = "storage.closed"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Storage errors stop the node: continuing after a failed write could report as
    /// committed what is not on disk.
    public var isFatal: Bool { true }
    public var description: String { "\(code.rawValue): \(message)" }
}

extension KeyValueStore {
    public var backlog: StoreBacklog? { nil }

    public func getMany(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] { try getEach(keys) }

    /// `get` of each key in turn.
    public func getEach(_ keys: [[UInt8]]) throws(StorageError) -> [[UInt8]?] {
        var values: [[UInt8]?] = []
        values.reserveCapacity(keys.count)
        for key in keys { values.append(try get(key)) }
        return values
    }

    /// An empty durable batch: what a store whose writes are ordered needs to sync them.
    public func sync() throws(StorageError) { try write(WriteBatch(), durable: true) }

    public func scan(prefix: [UInt8], limit: Int) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try scan(prefix: prefix, start: nil, limit: limit)
    }
}
