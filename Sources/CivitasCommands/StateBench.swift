import ArgumentParser
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasState
import CivitasStorage
import CivitasTesting
import Foundation

/// What the size of the state costs: blocks of `kv` puts executed, staged into the state
/// tree and written durably to RocksDB, on a state that already holds N records, for
/// each N asked. Everything a validator does per block that depends on the state's size
/// is here; signatures, consensus and the network are not (they do not depend on it).
struct StateBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "kv blocks against states of different sizes: the cost of a large state.")

    @Option(help: "State sizes to compare, in records (repeat).") var records: [Int] = [10_000, 10_000_000]
    @Option(help: "Transactions per block.") var block = 1_000
    @Option(help: "Blocks timed per state size (after one warm-up block).") var blocks = 20
    @Option(help: "Records loaded per write while filling the state.") var loadChunk = 200_000
    @Option(help: "State-tree node cache, MiB (a node's `limits.stateCacheMebibytes`).")
    var cacheMib = StateNodeCache.defaultCapacityBytes >> 20
    @Option(help: "Directory for the RocksDB stores (default: a temporary one, removed after).") var dir: String?
    @Flag var json = false

    func validate() throws {
        guard !records.isEmpty, records.allSatisfy({ (1...100_000_000).contains($0) }) else {
            throw ValidationError("--records must be 1 to 100000000")
        }
        guard (1...5_000).contains(block) else { throw ValidationError("--block must be 1 to 5000") }
        guard (1...1_000).contains(blocks) else { throw ValidationError("--blocks must be 1 to 1000") }
        guard (1_000...5_000_000).contains(loadChunk) else { throw ValidationError("--load-chunk must be 1000 to 5000000") }
        guard (1...1 << 20).contains(cacheMib) else { throw ValidationError("--cache-mib must be 1 to 1048576") }
    }

    struct Result: Codable {
        var records: Int
        var loadSeconds: Double
        var microsecondsPerTransaction: Double
        var transactionsPerSecond: Double
        var diskBytes: Int
        var diskBytesPerTransaction: Double
        var cacheMebibytes: Int
        /// What the node cache held when the timed blocks ended.
        var cachedNodes: Int
        var cachedBytes: Int
    }

    func run() async throws {
        let base = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("civitas-state-bench-\(UUID().uuidString)").path
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: base) } }
        var results: [Result] = []
        for count in records {
            results.append(try measure(records: count, path: "\(base)/state-\(count)"))
            if !json {
                let result = results.last!
                print(
                    String(
                        format: "%11d records: %7.1f µs/tx  %8.0f tx/s  disk %.0f B/tx  (loaded in %.0f s; cache %d nodes, %.0f of %d MiB)",
                        result.records, result.microsecondsPerTransaction, result.transactionsPerSecond, result.diskBytesPerTransaction,
                        result.loadSeconds, result.cachedNodes, Double(result.cachedBytes) / 1_048_576, result.cacheMebibytes))
            }
        }
        if json { return try Output.json(results) }
        if let first = results.first, let last = results.last, results.count > 1 {
            print(String(format: "throughput at %d records is %.0f%% of that at %d", last.records, last.transactionsPerSecond / first.transactionsPerSecond * 100, first.records))
        }
    }

    static func recordKey(_ index: Int) -> [UInt8] { Array(String(format: "user%010d", index).utf8) }

    private func measure(records count: Int, path: String) throws -> Result {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let store = try RocksDBStore(path: path)
        let hasher = ChainHasher(.sha256)
        let chain = try ExecutionChain()
        let writer = chain.admins[1]
        let owner = chain.address(writer)
        // One cache for the load and the blocks, as in a node that has been running: the
        // blocks start with what the load left in it (the current tree, within budget).
        let cache = StateNodeCache(capacityBytes: cacheMib << 20)
        let state = StateStore(store: store, hasher: hasher, cache: cache)
        var random = SeededRandom(seed: 11)
        func value() -> [UInt8] { (0..<100).map { _ in UInt8(ascii: "a") + UInt8(random.next() % 26) } }

        // The genesis state, then the records in chunks, each one tree update and a
        // durable write, as blocks would leave them (but far larger than a block).
        let loadStart = ContinuousClock.now
        var (root, batch) = try state.stage(root: .zero, changes: Executor.genesisChanges(chain.genesis, hasher: hasher), staleAt: nil)
        try store.write(batch, durable: true)
        var loaded = 0
        while loaded < count {
            let end = min(count, loaded + loadChunk)
            let changes = (loaded..<end).map { StateTree.Change(key: StateKeys.kv(owner: owner, key: Self.recordKey($0)), value: value()) }
            (root, batch) = try state.stage(root: root, changes: changes, staleAt: nil)
            try store.write(batch, durable: true)
            loaded = end
        }
        let loadSeconds = (ContinuousClock.now - loadStart).seconds

        let executor = Executor(chainId: chain.genesis.chainId, hasher: hasher)
        var height: UInt64 = 1
        var elapsed = Duration.zero
        let diskBefore = FileSystem.directoryBytes(path)
        for number in 0...blocks {
            let transactions = try chain.sign(
                (0..<block).map { _ in
                    let key = Self.recordKey(Int(random.next() % UInt64(count)))
                    return (writer, Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: key, value: value())))
                }, gasLimit: 100_000)
            let start = ContinuousClock.now
            let execution = executor.execute(transactions, height: height, base: state)
            guard execution.receipts.allSatisfy({ $0.status == .success }) else {
                throw CommandError("a kv put failed: \(execution.receipts.first { $0.status != .success }!.status)")
            }
            (root, batch) = try state.stage(root: root, changes: execution.changes, staleAt: nil)
            try store.write(batch, durable: true)
            // The first block warms the caches and is not counted.
            if number > 0 { elapsed += ContinuousClock.now - start }
            height += 1
        }
        let diskAfter = FileSystem.directoryBytes(path)
        let timed = Double(block * blocks)
        return Result(
            records: count, loadSeconds: loadSeconds, microsecondsPerTransaction: elapsed.seconds * 1e6 / timed,
            transactionsPerSecond: timed / elapsed.seconds, diskBytes: diskAfter,
            diskBytesPerTransaction: Double(diskAfter - diskBefore) / Double(block * (blocks + 1)), cacheMebibytes: cacheMib,
            cachedNodes: cache.count, cachedBytes: cache.bytes)
    }
}
