import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasTesting
import Foundation

enum LoadWorkload: String, CaseIterable, Codable, Sendable {
    /// YCSB-like puts of fixed-size values under uniform or Zipfian keys.
    case kv
    /// SmallBank-like token transfers to a set of accounts; fewer accounts, more contention.
    case transfer
    /// Ordering only: each transaction takes a nonce and changes nothing else.
    case noop
}

enum LoadMode: String, CaseIterable, Codable, Sendable {
    /// Each worker keeps one batch in flight and sends the next once it commits.
    case closed
    /// Batches leave at a fixed rate whatever the network does.
    case open
}

enum KeyDistribution: String, CaseIterable, Codable, Sendable {
    case uniform
    case zipfian
}

/// YCSB's scrambled Zipfian choice of record (Gray et al., "Quickly generating
/// billion-record synthetic databases"): rank r with probability ∝ 1/r^θ, then hashed so
/// the hot records are spread over the key space.
struct ZipfianChooser {
    let count: Int
    let theta: Double
    private let alpha: Double
    private let zetaN: Double
    private let eta: Double

    init(count: Int, theta: Double = 0.99) {
        self.count = count
        self.theta = theta
        var zeta = 0.0
        for rank in 1...max(count, 1) { zeta += 1 / pow(Double(rank), theta) }
        zetaN = zeta
        let zeta2 = 1 + 1 / pow(2, theta)
        alpha = 1 / (1 - theta)
        eta = (1 - pow(2 / Double(count), 1 - theta)) / (1 - zeta2 / zeta)
    }

    func rank(_ random: inout SeededRandom) -> Int {
        let u = Double(random.next() >> 11) / Double(1 << 53)
        let uz = u * zetaN
        if uz < 1 { return 0 }
        if uz < 1 + pow(0.5, theta) { return min(1, count - 1) }
        return min(count - 1, Int(Double(count) * pow(eta * u - eta + 1, alpha)))
    }

    func record(_ random: inout SeededRandom) -> Int {
        // FNV-1a of the rank, as YCSB scrambles.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var value = UInt64(rank(&random))
        for _ in 0..<8 {
            hash = (hash ^ (value & 0xff)) &* 0x100_0000_01b3
            value >>= 8
        }
        return Int(hash % UInt64(count))
    }
}

/// Pre-signed transactions and the HTTP requests that carry them, laid out so worker w
/// sends batches `w * batchesPerWorker ..< (w + 1) * batchesPerWorker` in order.
struct LoadPlan {
    struct Shape {
        var workload: LoadWorkload
        var records: Int
        var distribution: KeyDistribution
        var valueBytes: Int
        var accounts: Int
        var batch: Int
        var workers: Int
        var batchesPerWorker: Int
        var expiryHeight: UInt64
        var gasLimit: UInt64 = 100_000
        var seed: UInt64 = 1
        /// kv: each transaction writes keys of its own instead of chosen ones (a preload):
        /// each worker numbers them from here, so a sender that is one worker's only one
        /// holds `user0…` up to what the preload gave each worker, the keys a run with
        /// `records` of that count writes over.
        var distinctFrom: Int? = nil
        /// kv with `distinctFrom`: keys per transaction, written with `kv.putMany` above 1.
        var keysPerTransaction = 1
    }

    let shape: Shape
    /// Transaction ids in send order; transaction i is in batch i / batch.
    let ids: [Hash]
    let requests: [[UInt8]]
    let index: [Hash: Int32]
    /// Each key's next nonce once every transaction of the plan has committed.
    let nextNonces: [UInt64]

    var transactionCount: Int { ids.count }

    /// Signs every transaction (in parallel, one worker's senders per task) before any is
    /// sent. `keys[k]` starts at `nonces[k]`; worker w signs with the keys k ≡ w (mod workers).
    init(shape: Shape, keys: [PrivateKey], nonces: [UInt64], chainId: String, hasher: ChainHasher, endpoints: [LoopbackHTTP.Endpoint]) throws {
        precondition(keys.count >= shape.workers && keys.count == nonces.count && !endpoints.isEmpty)
        self.shape = shape
        let perWorker = shape.batch * shape.batchesPerWorker
        let zipfian = shape.workload == .kv && shape.distribution == .zipfian ? ZipfianChooser(count: shape.records) : nil
        let accounts = (0..<shape.accounts).map { Address(hasher.hash(Array("civitas bench account \($0)".utf8))) }
        let slots = WorkerOutput(count: shape.workers)
        let failure = WorkerOutput(count: 1)
        DispatchQueue.concurrentPerform(iterations: shape.workers) { worker in
            do {
                let ownKeys = Array(stride(from: worker, to: keys.count, by: shape.workers))
                let builders = ownKeys.map {
                    (TransactionBuilder(chainId: chainId, hashSuite: hasher.suite, key: keys[$0]), nonces[$0])
                }
                var next = builders.map(\.1)
                var random = SeededRandom(seed: shape.seed &+ UInt64(worker) &* 0x9E37_79B9)
                var ids: [Hash] = []
                ids.reserveCapacity(perWorker)
                var requests: [[UInt8]] = []
                let endpoint = endpoints[worker % endpoints.count]
                var body: [UInt8] = []
                for number in 0..<perWorker {
                    let signer = number % builders.count
                    let call = Self.call(shape, number: number, random: &random, zipfian: zipfian, accounts: accounts)
                    let (transaction, id) = try builders[signer].0.sign(
                        call: call, nonce: next[signer], expiryHeight: shape.expiryHeight, gasLimit: shape.gasLimit)
                    next[signer] += 1
                    ids.append(id)
                    body += Array((body.isEmpty ? "{\"transactions\":[\"" : ",\"").utf8)
                    body += Array(transaction.canonicalBytes.hexString.utf8)
                    body += [UInt8(ascii: "\"")]
                    if (number + 1) % shape.batch == 0 {
                        body += Array("]}".utf8)
                        requests.append(endpoint.request("POST", "/v1/transactions/batch", body: body))
                        body.removeAll(keepingCapacity: true)
                    }
                }
                slots.store((ids, requests, Array(zip(ownKeys, next))), at: worker)
            } catch {
                failure.fail("signing failed: \(error)")
            }
        }
        if let message = failure.failure { throw CommandError(message) }
        var ids: [Hash] = []
        var requests: [[UInt8]] = []
        var nextNonces = nonces
        for (workerIds, workerRequests, workerNonces) in slots.values {
            ids += workerIds
            requests += workerRequests
            for (key, nonce) in workerNonces { nextNonces[key] = nonce }
        }
        self.nextNonces = nextNonces
        self.ids = ids
        self.requests = requests
        var index: [Hash: Int32] = [:]
        index.reserveCapacity(ids.count)
        for (position, id) in ids.enumerated() { index[id] = Int32(position) }
        self.index = index
    }

    private static func call(
        _ shape: Shape, number: Int, random: inout SeededRandom, zipfian: ZipfianChooser?, accounts: [Address]
    ) -> Call {
        switch shape.workload {
        case .kv:
            func value() -> [UInt8] {
                var value = [UInt8](repeating: 0, count: shape.valueBytes)
                for index in value.indices { value[index] = UInt8(ascii: "a") + UInt8(random.next() % 26) }
                return value
            }
            func key(_ record: Int) -> [UInt8] { Array(String(format: "user%010d", record).utf8) }
            if let first = shape.distinctFrom, shape.keysPerTransaction > 1 {
                let records = (first + number * shape.keysPerTransaction)..<(first + (number + 1) * shape.keysPerTransaction)
                return Call(module: "kv", method: "putMany", arguments: KVModule.putManyArguments(records.map { (key($0), value()) }))
            }
            let record = shape.distinctFrom.map { $0 + number } ?? zipfian?.record(&random) ?? Int(random.next() % UInt64(shape.records))
            return Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: key(record), value: value()))
        case .transfer:
            let recipient = accounts[Int(random.next() % UInt64(accounts.count))]
            return Call(module: "token", method: "transfer", arguments: TokenModule.transferArguments(to: recipient, amount: 1))
        case .noop:
            return Call(module: "chain", method: "noop", arguments: [])
        }
    }
}

/// One slot per concurrent task, each written once by its own task.
private final class WorkerOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [([Hash], [[UInt8]], [(key: Int, nonce: UInt64)])?]
    private(set) var failure: String?
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func store(_ value: ([Hash], [[UInt8]], [(key: Int, nonce: UInt64)]), at index: Int) { lock.withLock { slots[index] = value } }
    func fail(_ message: String) { lock.withLock { failure = failure ?? message } }
    var values: [([Hash], [[UInt8]], [(key: Int, nonce: UInt64)])] { lock.withLock { slots.map { $0 ?? ([], [], []) } } }
}

/// What the workers and the event reader record, in nanoseconds since the run's origin.
final class LoadRecorder: @unchecked Sendable {
    static let never: Int64 = -1

    let condition = NSCondition()
    let origin = ContinuousClock.now
    /// The wall clock at `origin`, to place block header times (milliseconds since 1970,
    /// from the proposers' clocks on this same machine) on the run's time line.
    let originWallNanoseconds = Int64(Date().timeIntervalSince1970 * 1e9)
    private(set) var submitted: [Int64]
    private(set) var committed: [Int64]
    /// The header time of each transaction's block: when its proposer built it.
    private(set) var proposed: [Int64]
    /// When each batch's HTTP answer (admitted or refused) came back.
    private(set) var answered: [Int64]
    private(set) var failed = 0
    private(set) var rejections: [String: Int] = [:]
    private(set) var blocks: [(height: UInt64, at: Int64, transactions: Int)] = []
    private(set) var eventError: String?
    private var remaining: [Int]
    private let batch: Int
    var stopping = false

    init(transactions: Int, batch: Int) {
        submitted = Array(repeating: Self.never, count: transactions)
        committed = Array(repeating: Self.never, count: transactions)
        proposed = Array(repeating: Self.never, count: transactions)
        remaining = Array(repeating: batch, count: transactions / batch)
        answered = Array(repeating: Self.never, count: transactions / batch)
        self.batch = batch
    }

    var now: Int64 {
        let elapsed = ContinuousClock.now - origin
        return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }

    func sent(batch number: Int, at time: Int64) {
        condition.withLock {
            for index in number * batch..<(number + 1) * batch { submitted[index] = time }
        }
    }

    func answered(batch number: Int, at time: Int64) {
        condition.withLock { answered[number] = time }
    }

    /// Milliseconds from each batch's request to its answer, for batches sent in `window`.
    func admissionMilliseconds(sentIn window: Range<Int64>) -> [Double] {
        condition.withLock {
            answered.indices.compactMap { number in
                let sent = submitted[number * batch]
                guard window.contains(sent), answered[number] != Self.never else { return nil }
                return Double(answered[number] - sent) / 1e6
            }
        }
    }

    func rejected(_ index: Int, code: String) {
        condition.withLock {
            submitted[index] = Self.never
            rejections[code, default: 0] += 1
            remaining[index / batch] -= 1
            condition.broadcast()
        }
    }

    func block(height: UInt64, timestampMilliseconds: UInt64, transactions: [(index: Int32?, success: Bool)]) {
        condition.withLock {
            let time = now
            let header = Int64(timestampMilliseconds) * 1_000_000 - originWallNanoseconds
            blocks.append((height, time, transactions.count))
            for (index, success) in transactions {
                guard let index = index.map(Int.init), committed[index] == Self.never else { continue }
                committed[index] = time
                proposed[index] = header
                if !success { failed += 1 }
                remaining[index / batch] -= 1
            }
            condition.broadcast()
        }
    }

    func eventStreamFailed(_ message: String) {
        condition.withLock {
            eventError = message
            condition.broadcast()
        }
    }

    /// Waits until every transaction of batch `number` is committed or rejected, or until
    /// `deadline`; false on timeout.
    func awaitBatch(_ number: Int, deadline: Int64) -> Bool {
        condition.withLock {
            while remaining[number] > 0, eventError == nil, !stopping {
                let left = deadline - now
                if left <= 0 { return false }
                _ = condition.wait(until: Date(timeIntervalSinceNow: min(Double(left) / 1e9, 1)))
            }
            return remaining[number] <= 0
        }
    }

    /// Waits until every transaction sent at or after `from` is committed, or until
    /// `deadline`.
    func drain(from: Int64, deadline: Int64) {
        condition.withLock {
            // Sending has stopped: the set to wait for only shrinks, so each wake-up
            // rechecks what was still pending rather than every transaction of the plan.
            var pending = submitted.indices.filter { submitted[$0] >= from && committed[$0] == Self.never }
            while eventError == nil {
                pending.removeAll { committed[$0] != Self.never }
                let left = deadline - now
                if pending.isEmpty || left <= 0 { return }
                _ = condition.wait(until: Date(timeIntervalSinceNow: min(Double(left) / 1e9, 0.2)))
            }
        }
    }

    func snapshot<T>(_ body: (LoadRecorder) -> T) -> T { condition.withLock { body(self) } }
}

/// Reads the node's event stream (`/v1/events`) on its own thread and tells the recorder
/// when each of the plan's transactions commits.
final class EventReader: @unchecked Sendable {
    private struct BlockEvent: Decodable {
        struct Transaction: Decodable {
            var transactionId: String
            var success: Bool
        }
        var height: UInt64
        var timestampMilliseconds: UInt64
        var transactions: [Transaction]
    }

    private let connection: LoopbackHTTP
    private let thread: Thread

    init(endpoint: LoopbackHTTP.Endpoint, plan: LoadPlan, recorder: LoadRecorder) throws {
        let connection = try LoopbackHTTP(endpoint, timeoutSeconds: 1)
        connection.keepWaiting = { !recorder.snapshot { $0.stopping } }
        try connection.send(endpoint.request("GET", "/v1/events"))
        let (status, _) = try connection.head()
        guard status == 200 else { throw CommandError("the event stream answered HTTP \(status)") }
        self.connection = connection
        let ready = DispatchSemaphore(value: 0)
        thread = Thread {
            ready.signal()
            Self.read(connection, plan: plan, recorder: recorder)
        }
        thread.stackSize = 1 << 20
        thread.start()
        ready.wait()
    }

    private static func read(_ connection: LoopbackHTTP, plan: LoadPlan, recorder: LoadRecorder) {
        let decoder = JSONDecoder()
        var pending: [UInt8] = []
        // Bytes already searched for the blank line that ends an event: a block's event
        // arrives in many chunks and is not scanned again from its start for each.
        var searched = 0
        do {
            while !recorder.snapshot({ $0.stopping }), let chunk = try connection.chunk() {
                pending += chunk
                while let end = Self.blankLine(in: pending, from: max(0, searched - 1)) {
                    let event = pending[..<end]
                    pending.removeSubrange(..<(end + 2))
                    searched = 0
                    guard let line = event.split(separator: 10).first(where: { $0.starts(with: Array("data: ".utf8)) }) else { continue }
                    let block = try decoder.decode(BlockEvent.self, from: Data(line.dropFirst(6)))
                    recorder.block(
                        height: block.height, timestampMilliseconds: block.timestampMilliseconds,
                        transactions: block.transactions.map { (Hash(hex: $0.transactionId).flatMap { plan.index[$0] }, $0.success) })
                }
                searched = pending.count
            }
            if !recorder.snapshot({ $0.stopping }) { recorder.eventStreamFailed("the event stream ended") }
        } catch {
            if !recorder.snapshot({ $0.stopping }) { recorder.eventStreamFailed("event stream: \(error)") }
        }
    }

    /// The index of the first "\n\n" at or after `start`.
    static func blankLine(in bytes: [UInt8], from start: Int) -> Int? {
        bytes.withUnsafeBufferPointer { buffer in
            var index = start
            while index + 1 < buffer.count {
                if buffer[index] == 10, buffer[index + 1] == 10 { return index }
                index += 1
            }
            return nil
        }
    }
}

/// Sends one worker's batches, open- or closed-loop, on its own thread.
final class LoadWorker: @unchecked Sendable {
    struct Schedule {
        var mode: LoadMode
        /// Seconds between this worker's batches in open-loop mode.
        var interval: Double
        /// Offset of this worker's first batch, so workers do not send in step.
        var offset: Double
        var end: Int64
        var commitTimeoutNanoseconds: Int64
    }

    private final class Outcome: @unchecked Sendable {
        var error: String?
        var exhausted = false
        var timedOut = 0
    }

    private let done = DispatchSemaphore(value: 0)
    private let outcome = Outcome()
    /// Read after `join()`.
    var error: String? { outcome.error }
    var exhausted: Bool { outcome.exhausted }
    var timedOut: Int { outcome.timedOut }

    init(number: Int, plan: LoadPlan, endpoint: LoopbackHTTP.Endpoint, schedule: Schedule, recorder: LoadRecorder) {
        let finished = done
        let outcome = outcome
        let thread = Thread {
            defer { finished.signal() }
            do {
                try Self.run(number: number, plan: plan, endpoint: endpoint, schedule: schedule, recorder: recorder, outcome: outcome)
            } catch {
                outcome.error = "worker \(number): \(error)"
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    func join() { done.wait() }

    private struct BatchAnswer: Decodable {
        struct Item: Decodable {
            var status: String
            var errorCode: String?
        }
        var results: [Item]
    }

    private static func run(
        number: Int, plan: LoadPlan, endpoint: LoopbackHTTP.Endpoint, schedule: Schedule, recorder: LoadRecorder, outcome: Outcome
    ) throws {
        let connection = try LoopbackHTTP(endpoint, timeoutSeconds: 30)
        let decoder = JSONDecoder()
        let batches = plan.shape.batchesPerWorker
        for step in 0..<batches {
            let batch = number * batches + step
            if schedule.mode == .open {
                let target = Int64((schedule.offset + Double(step) * schedule.interval) * 1e9)
                if target >= schedule.end { return }
                let reached = Self.wait(
                    until: target, now: { recorder.now }, stopping: { recorder.snapshot { $0.stopping } },
                    sleep: { usleep(useconds_t($0 / 1_000)) })
                if !reached { return }
            }
            let time = recorder.now
            if time >= schedule.end || recorder.snapshot({ $0.stopping }) { return }
            recorder.sent(batch: batch, at: time)
            try connection.send(plan.requests[batch])
            let (status, body) = try connection.response()
            recorder.answered(batch: batch, at: recorder.now)
            let first = batch * plan.shape.batch
            if status == 200, let answer = try? decoder.decode(BatchAnswer.self, from: Data(body)), answer.results.count == plan.shape.batch {
                for (offset, item) in answer.results.enumerated() where item.status != "pending" {
                    recorder.rejected(first + offset, code: item.errorCode ?? item.status)
                }
            } else {
                let code = (try? JSONDecoder().decode(APIErrorBody.self, from: Data(body)))?.error.code ?? "http.\(status)"
                for index in first..<first + plan.shape.batch { recorder.rejected(index, code: code) }
            }
            if schedule.mode == .closed, !recorder.awaitBatch(batch, deadline: recorder.now + schedule.commitTimeoutNanoseconds) {
                outcome.timedOut += 1
            }
        }
        outcome.exhausted = true
    }

    /// Sleeps until `now()` reaches `target` (nanoseconds), in slices of at most a second
    /// so that a stopping run is noticed; false if it stopped first.
    static func wait(until target: Int64, now: () -> Int64, stopping: () -> Bool, sleep: (Int64) -> Void) -> Bool {
        while case let left = target - now(), left > 0 {
            if stopping() { return false }
            sleep(min(left, 1_000_000_000))
        }
        return true
    }

    private struct APIErrorBody: Decodable {
        struct Detail: Decodable { var code: String }
        var error: Detail
    }
}

/// CPU time, peak memory and disk use of a local process, from /proc and its home.
struct NodeProcessProbe {
    var pid: pid_t
    var home: String

    /// User plus system CPU seconds so far.
    func cpuSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14, stime 15 (1-based).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Peak resident memory (VmHWM) in bytes.
    func peakResidentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }

    /// Bytes of the node's files, logs aside.
    func diskBytes() -> Int { FileSystem.directoryBytes(home) }
}
