import ArgumentParser
import CivitasAPI
import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasState
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension LoadWorkload: ExpressibleByArgument {}
extension LoadMode: ExpressibleByArgument {}
extension KeyDistribution: ExpressibleByArgument {}

/// Throughput and latency of a running network under load, beside the verification
/// bound measured in the same run.
struct LoadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Drive a network with pre-signed transactions; report committed TPS, latency and the bound.",
        discussion: """
            Either --dir DIR (a local network: created with --devnet N validators if new, started \
            if stopped, and its nodes' CPU, memory and disk reported) or --node URL … with --key \
            FILE … (any running network; the keys must be members with distinct accounts).
            """)

    @Option(help: "Workload: kv, transfer or noop.") var workload: LoadWorkload = .kv
    @Option(help: "closed: each worker keeps one batch in flight; open: batches leave at --rate.") var mode: LoadMode = .closed
    @Option(help: "Open-loop rate, transactions per second.") var rate: Double?
    @Option(help: "Concurrent workers (connections), spread over the nodes.") var concurrency = 8
    @Option(help: "Transactions per request.") var batch = 250
    @Option(help: "Seconds measured, after the warm-up.") var duration = 20.0
    @Option(help: "Seconds of load before measuring.") var warmup = 5.0
    @Option(help: "kv: number of distinct keys written.") var records = 10_000
    @Option(help: "kv: key choice, uniform or zipfian.") var distribution: KeyDistribution = .uniform
    @Option(help: "kv: bytes per value.") var valueBytes = 100
    @Option(help: "kv: distinct keys written and committed before the run (not measured), so the run meets a state of that size; worker w's sender gets user0… up to N ÷ concurrency, which --records of that count writes over.")
    var preload = 0
    @Option(help: "kv: keys per preload transaction (`kv.putMany` above 1): a large state with a short history.")
    var preloadBatch = 1
    @Option(help: "Seconds at most to wait before the run (after the preload, if any) until every node's store owes no compaction and runs none; 0 not to wait.")
    var settleMax = 0.0
    @Option(help: "State-tree node cache of each node of a new local network, MiB (`limits.stateCacheMebibytes`).")
    var stateCacheMib: Int?
    @Option(help: "Heights whose whole state each node of a new local network keeps, 0 for all (`limits.stateHeightsKept`).")
    var stateHeightsKept: Int?
    @Option(help: "transfer: recipient accounts (fewer: more contention).") var accounts = 1_000
    @Option(help: "A local network's directory.") var dir: String?
    @Option(help: "Validators of a new local network.") var devnet = 4
    @Option(help: "Member keys of a new local network (senders).") var clients = 64
    @Option(help: "Hash suite of a new local network: sha256 or sm3.") var hashSuite: HashSuiteID = .sha256
    @Option(help: "Signature scheme of a new local network's keys.") var scheme: SignatureScheme = .ed25519
    @Option(name: .customLong("node"), help: "API URL of a running node (repeat for several).") var nodes: [String] = []
    @Option(name: .customLong("key"), help: "Sender key file (repeat; at least --concurrency keys).") var keys: [String] = []
    @Option(help: "Validators of the network, for the bound (default: the local network's, or the --node count).") var validators: Int?
    @Option(help: "Most transactions to pre-sign.") var transactionsMax = 1_000_000
    @Option(help: "Seconds after the run to wait for the last commits.") var drain = 15.0
    @Flag(help: "Leave the nodes this command started running.") var keepRunning = false
    @Flag var json = false

    func validate() throws {
        guard dir != nil || !nodes.isEmpty else { throw ValidationError("give --dir DIR or --node URL … with --key FILE …") }
        guard dir == nil || nodes.isEmpty else { throw ValidationError("--dir and --node exclude each other") }
        guard nodes.isEmpty || !keys.isEmpty else { throw ValidationError("--node needs sender keys (--key FILE …)") }
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 256") }
        guard (1...5_000).contains(batch) else { throw ValidationError("--batch must be 1 to 5000") }
        guard (1...3_600).contains(duration) else { throw ValidationError("--duration must be 1 to 3600 seconds") }
        guard (0...600).contains(warmup) else { throw ValidationError("--warmup must be 0 to 600 seconds") }
        guard (1...100_000_000).contains(records) else { throw ValidationError("--records must be 1 to 100000000") }
        guard (0...16_384).contains(valueBytes) else { throw ValidationError("--value-bytes must be 0 to 16384") }
        guard (0...100_000_000).contains(preload) else { throw ValidationError("--preload must be 0 to 100000000") }
        guard (1...KVModule.putManyEntriesMax).contains(preloadBatch) else {
            throw ValidationError("--preload-batch must be 1 to \(KVModule.putManyEntriesMax)")
        }
        if let stateCacheMib, !(1...1 << 20).contains(stateCacheMib) { throw ValidationError("--state-cache-mib must be 1 to 1048576") }
        if let stateHeightsKept, stateHeightsKept != 0, stateHeightsKept < Int(StatePruner.keptHeightsMin) {
            throw ValidationError("--state-heights-kept must be 0 (every state) or at least \(StatePruner.keptHeightsMin)")
        }
        guard (1...10_000_000).contains(accounts) else { throw ValidationError("--accounts must be 1 to 10000000") }
        guard (1...16).contains(devnet) else { throw ValidationError("--devnet must be 1 to 16") }
        guard (1...999).contains(clients) else { throw ValidationError("--clients must be 1 to 999") }
        guard (1...10_000_000).contains(transactionsMax) else { throw ValidationError("--transactions-max must be 1 to 10000000") }
        guard (1...600).contains(drain) else { throw ValidationError("--drain must be 1 to 600 seconds") }
        guard (0...7_200).contains(settleMax) else { throw ValidationError("--settle-max must be 0 to 7200 seconds") }
        if mode == .open {
            guard let rate, rate > 0, rate <= 1_000_000 else { throw ValidationError("--mode open needs --rate 1 to 1000000") }
        } else if rate != nil {
            throw ValidationError("--rate is for --mode open")
        }
        if let validators, !(1...256).contains(validators) { throw ValidationError("--validators must be 1 to 256") }
    }

    typealias Latency = LatencySummary

    struct NodeFigures: Codable {
        var node: Int
        var cpuPercent: Double
        var peakRssMib: Double
        var diskBytesPerTransaction: Double?
    }

    struct Setup: Codable {
        var workload: LoadWorkload
        var mode: LoadMode
        var rate: Double?
        var concurrency: Int
        var batch: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        var records: Int
        var preloaded: Int
        var preloadSeconds: Double
        /// How long the run waited for the nodes' stores to settle (`--settle-max`), and
        /// whether they had when it started.
        var settleSeconds: Double
        var settled: Bool?
        var distribution: KeyDistribution
        var valueBytes: Int
        var accounts: Int
        var validators: Int
        var nodes: Int
        var senders: Int
        var scheme: String
        var hashSuite: String
        var presigned: Int
        var signingSeconds: Double
        var cores: Int
        var memoryGib: Int
    }

    struct Report: Codable {
        var setup: Setup
        var submittedTps: Double
        var committedTps: Double
        var latencyMs: Latency?
        /// A batch's request sent → its answer (verified and admitted or refused): the part
        /// of the latency before the mempool.
        var admissionMs: Latency?
        /// The end-to-end latency cut at the block's header time (its proposer's clock, on
        /// this machine): request sent → block proposed, and block proposed → seen
        /// committed on node0's event stream.
        var toProposalMs: Latency?
        var afterProposalMs: Latency?
        var committed: Int
        var failedReceipts: Int
        var uncommitted: Int
        var rejected: [String: Int]
        var blockIntervalMs: Double?
        var transactionsPerBlock: Double?
        var nodes: [NodeFigures]
        var verifyRatePerCore: Double
        var verifyRateBefore: Double
        var verifyRateAfter: Double
        var boundTps: Double
        var ratioToBound: Double
        /// Verifications per second with every core verifying at once (cores that share a
        /// host do not scale perfectly), and the bound and ratio that gives.
        var verifyRateAllCores: Double
        var boundAllCoresTps: Double
        var ratioToAllCoresBound: Double
        /// CPU of this load generator over the measured window, in % of one core.
        var generatorCpuPercent: Double
        var notes: [String]
    }

    func run() async throws {
        var notes: [String] = []
        var started: [DevnetProcess.Started] = []
        var probes: [NodeProcessProbe] = []
        var urls = nodes
        var keyPaths = keys
        var validatorCount = validators ?? nodes.count
        if let dir {
            let layout = NetworkLayout(
                directory: dir, chainId: "civitas-bench", hashSuite: hashSuite, schemes: SignatureScheme.allCases, keyScheme: scheme,
                organisations: devnet, basePort: 0, clients: clients, stateCacheMebibytes: stateCacheMib,
                stateHeightsKept: stateHeightsKept)
            started = try await DevnetProcess.startAll(dir: dir, timeout: 60, layout: layout, log: { if !json { print($0) } })
            urls = started.map(\.endpoint)
            probes = started.map { NodeProcessProbe(pid: $0.pid, home: $0.home) }
            validatorCount = validators ?? started.count
            if keyPaths.isEmpty {
                keyPaths = (0..<1_000).map { NetworkLayout.clientKeyPath(dir, $0) }.prefix { FileSystem.exists($0) }
            }
        }
        var stopped = keepRunning
        func stopStartedNodes() async {
            guard !stopped else { return }
            stopped = true
            await DevnetProcess.stopStartedNow(started)
        }
        defer {
            if !stopped {
                let stopping = started
                let semaphore = DispatchSemaphore(value: 0)
                Task {
                    await DevnetProcess.stopStartedNow(stopping)
                    semaphore.signal()
                }
                semaphore.wait()
            }
        }
        guard keyPaths.count >= concurrency else {
            throw CommandError("\(keyPaths.count) sender keys for \(concurrency) workers: each worker needs its own (more --key, or a network with more --clients)")
        }
        let endpoints = try urls.map { try LoopbackHTTP.Endpoint(url: $0) }
        let signers = try keyPaths.map { try KeyFile.load($0) }
        let client = NodeClient(base: urls[0])
        let (status, hasher) = try await client.chain()
        func readNonces() async throws -> [UInt64] {
            var nonces: [UInt64] = []
            for key in signers {
                let account: AccountView = try await client.get("/v1/accounts/\(Address(of: key.publicKey, using: hasher))")
                guard account.organisation != nil else { throw CommandError("key \(Address(of: key.publicKey, using: hasher)) is no member of this chain") }
                nonces.append(account.nonce)
            }
            return nonces
        }
        var nonces = try await readNonces()
        var preloadSeconds = 0.0
        var preloaded = 0
        if preload > 0 {
            let start = ContinuousClock.now
            preloaded = try preloadState(signers: signers, nonces: nonces, chainId: status.chainId, hasher: hasher, endpoints: endpoints, height: status.height)
            preloadSeconds = (ContinuousClock.now - start).seconds
            if !json { print(String(format: "preloaded %d keys in %.0f s (%.0f tx/s)", preloaded, preloadSeconds, Double(preloaded) / preloadSeconds)) }
            nonces = try await readNonces()
        }
        var settleSeconds = 0.0
        var settled: Bool?
        if settleMax > 0 {
            let start = ContinuousClock.now
            settled = try await Self.waitForSettledStores(urls, within: .milliseconds(Int64(settleMax * 1_000)))
            settleSeconds = (ContinuousClock.now - start).seconds
            if !json {
                print(String(format: settled! ? "stores settled in %.0f s" : "stores still compacting after %.0f s; running all the same", settleSeconds))
            }
        }
        let scheme = signers[0].publicKey.scheme
        let cores = ProcessInfo.processInfo.activeProcessorCount

        // The bound, measured now and again after the run: this machine's speed drifts.
        let before = try VerifyBench.rate(scheme, seconds: 2)
        let allCores = try VerifyBench.parallelRate(scheme, seconds: 2, threads: cores)

        let total = Double(warmup + duration)
        // Closed loop: enough for 2.5 times the bound (batch verification passes it: 141% measured).
        let wanted = mode == .open ? Int(rate! * total) : Int(before * Double(cores) / Double(max(validatorCount, 1)) * 2.5 * total)
        let perWorkerBatches = max(1, min(wanted, transactionsMax) / (concurrency * batch) + (mode == .open ? 1 : 0))
        let shape = LoadPlan.Shape(
            workload: workload, records: records, distribution: distribution, valueBytes: valueBytes, accounts: accounts, batch: batch,
            workers: concurrency, batchesPerWorker: perWorkerBatches, expiryHeight: status.height + 1_000_000)
        let signingStart = ContinuousClock.now
        if !json { print("signing \(perWorkerBatches * concurrency * batch) transactions…") }
        let plan = try LoadPlan(shape: shape, keys: signers, nonces: nonces, chainId: status.chainId, hasher: hasher, endpoints: endpoints)
        let signingSeconds = (ContinuousClock.now - signingStart).seconds

        let recorder = LoadRecorder(transactions: plan.transactionCount, batch: batch)
        let events = try EventReader(endpoint: endpoints[0], plan: plan, recorder: recorder)
        _ = events
        let warmupEnd = Int64(warmup * 1e9)
        let end = Int64(total * 1e9)
        if !json { print("running \(workload) \(mode)-loop for \(Int(warmup)) s warm-up + \(Int(duration)) s…") }
        var cpuStart: [Double?] = []
        var diskStart: [Int] = []
        var committedAtWarmupEnd = 0
        let interval = mode == .open ? Double(batch * concurrency) / rate! : 0
        let workers = (0..<concurrency).map { number in
            LoadWorker(
                number: number, plan: plan, endpoint: endpoints[number % endpoints.count],
                schedule: .init(
                    mode: mode, interval: interval, offset: interval * Double(number) / Double(concurrency), end: end,
                    commitTimeoutNanoseconds: 60_000_000_000),
                recorder: recorder)
        }
        // Sample the node processes at the edges of the measured window.
        try await sleep(until: warmupEnd, recorder)
        cpuStart = probes.map { $0.cpuSeconds() }
        let generator = NodeProcessProbe(pid: getpid(), home: "")
        let generatorStart = generator.cpuSeconds() ?? 0
        diskStart = probes.map { $0.diskBytes() }
        committedAtWarmupEnd = recorder.snapshot { $0.committed.count { $0 != LoadRecorder.never } }
        try await sleep(until: end, recorder)
        let cpuEnd = probes.map { $0.cpuSeconds() }
        let generatorEnd = generator.cpuSeconds() ?? 0
        let windowSeconds = Double(recorder.now - warmupEnd) / 1e9
        for worker in workers { worker.join() }
        recorder.drain(from: warmupEnd, deadline: recorder.now + Int64(drain * 1e9))
        let committedAtEnd = recorder.snapshot { $0.committed.count { $0 != LoadRecorder.never } }
        let diskEnd = probes.map { $0.diskBytes() }
        recorder.snapshot { $0.stopping = true }
        // Nodes this run started are stopped first: their flushes and compactions after
        // the load would otherwise slow the measurement and flatter the ratio.
        let peakResident = probes.map { $0.peakResidentBytes() }
        await stopStartedNodes()
        let after = try VerifyBench.rate(scheme, seconds: 2)

        for worker in workers {
            if let error = worker.error { throw CommandError(error) }
        }
        if let error = recorder.snapshot({ $0.eventError }) { throw CommandError(error) }
        if mode == .closed, workers.contains(where: \.exhausted) {
            notes.append("a worker ran out of pre-signed transactions before the end; raise --transactions-max")
        }
        let timedOut = workers.reduce(0) { $0 + $1.timedOut }
        if timedOut > 0 { notes.append("\(timedOut) batches waited over 60 s for their commits") }

        let admission = Latency(milliseconds: recorder.admissionMilliseconds(sentIn: warmupEnd..<end))
        let report = recorder.snapshot { recorded -> Report in
            var latencies: [Double] = []
            var toProposal: [Double] = []
            var afterProposal: [Double] = []
            var submittedInWindow = 0
            var committedInWindow = 0
            var uncommitted = 0
            for index in recorded.submitted.indices {
                let sent = recorded.submitted[index]
                let done = recorded.committed[index]
                if done >= warmupEnd, done < end { committedInWindow += 1 }
                guard sent >= warmupEnd, sent < end else { continue }
                submittedInWindow += 1
                if done == LoadRecorder.never {
                    uncommitted += 1
                } else {
                    latencies.append(Double(done - sent) / 1e6)
                    toProposal.append(Double(recorded.proposed[index] - sent) / 1e6)
                    afterProposal.append(Double(done - recorded.proposed[index]) / 1e6)
                }
            }
            let latency = Latency(milliseconds: latencies)
            let windowBlocks = recorded.blocks.filter { $0.at >= warmupEnd && $0.at < end }
            var blockInterval: Double?
            if windowBlocks.count > 1 {
                blockInterval = Double(windowBlocks.last!.at - windowBlocks.first!.at) / 1e6 / Double(windowBlocks.count - 1)
            }
            let perBlock = windowBlocks.isEmpty ? nil : Double(windowBlocks.reduce(0) { $0 + $1.transactions }) / Double(windowBlocks.count)
            let committedDuring = committedAtEnd - committedAtWarmupEnd
            let figures = probes.indices.map { index -> NodeFigures in
                var cpu = 0.0
                if let first = cpuStart[index], let last = cpuEnd[index] { cpu = (last - first) / windowSeconds * 100 }
                let disk = committedDuring > 0 ? Double(diskEnd[index] - diskStart[index]) / Double(committedDuring) : nil
                return NodeFigures(
                    node: index, cpuPercent: cpu, peakRssMib: Double(peakResident[index] ?? 0) / 1_048_576,
                    diskBytesPerTransaction: disk)
            }
            let rate = (before + after) / 2
            let bound = rate * Double(cores) / Double(max(validatorCount, 1))
            let committedTps = Double(committedInWindow) / duration
            return Report(
                setup: Setup(
                    workload: workload, mode: mode, rate: self.rate, concurrency: concurrency, batch: batch, durationSeconds: duration,
                    warmupSeconds: warmup, records: records, preloaded: preloaded, preloadSeconds: preloadSeconds,
                    settleSeconds: settleSeconds, settled: settled, distribution: distribution, valueBytes: valueBytes, accounts: accounts,
                    validators: validatorCount, nodes: urls.count, senders: signers.count, scheme: scheme.description,
                    hashSuite: hasher.suite.description, presigned: plan.transactionCount, signingSeconds: signingSeconds, cores: cores,
                    memoryGib: Int(ProcessInfo.processInfo.physicalMemory >> 30)),
                submittedTps: Double(submittedInWindow) / duration, committedTps: committedTps, latencyMs: latency,
                admissionMs: admission, toProposalMs: Latency(milliseconds: toProposal),
                afterProposalMs: Latency(milliseconds: afterProposal), committed: committedInWindow, failedReceipts: recorded.failed, uncommitted: uncommitted, rejected: recorded.rejections,
                blockIntervalMs: blockInterval, transactionsPerBlock: perBlock, nodes: figures, verifyRatePerCore: rate,
                verifyRateBefore: before, verifyRateAfter: after, boundTps: bound, ratioToBound: committedTps / bound,
                verifyRateAllCores: allCores, boundAllCoresTps: allCores / Double(max(validatorCount, 1)),
                ratioToAllCoresBound: committedTps / (allCores / Double(max(validatorCount, 1))),
                generatorCpuPercent: (generatorEnd - generatorStart) / windowSeconds * 100, notes: notes)
        }
        if json {
            try Output.json(report, snakeCase: true)
        } else {
            Self.render(report)
        }
    }

    /// Writes `preload` distinct keys, closed-loop with every worker, in rounds of at
    /// most `transactionsMax` pre-signed transactions, and returns once each is committed,
    /// with the count written (whole batches: up to one batch per worker more than asked).
    private func preloadState(
        signers: [PrivateKey], nonces: [UInt64], chainId: String, hasher: ChainHasher, endpoints: [LoopbackHTTP.Endpoint], height: UInt64
    ) throws -> Int {
        var nonces = nonces
        var written = 0
        while written < preload {
            // Transactions of many keys go fewer to a request (at most ten times the keys of a
            // run's request), so what is in flight fits the nodes' mempools.
            let transactionsLeft = (preload - written + preloadBatch - 1) / preloadBatch
            // The last round's requests are smaller, so the preload passes what was asked by
            // at most a request per worker.
            let request = max(1, min(batch, batch * 10 / preloadBatch, transactionsLeft / concurrency))
            let perWorkerBatches = max(1, min(transactionsLeft, transactionsMax) / (concurrency * request))
            // Gas per key, with room: its write (1,000 + 20 per byte of state key and value)
            // and its carriage (10 per byte). The block's gas limit bounds the sum of the limits.
            let shape = LoadPlan.Shape(
                workload: .kv, records: preload, distribution: .uniform, valueBytes: valueBytes, accounts: 1, batch: request,
                workers: concurrency, batchesPerWorker: perWorkerBatches, expiryHeight: height + 1_000_000,
                gasLimit: 100_000 + UInt64(preloadBatch - 1) * UInt64(2_000 + 30 * (valueBytes + 64)), seed: 0x5052_454C_4F41_44 &+ UInt64(written),
                distinctFrom: written / concurrency, keysPerTransaction: preloadBatch)
            if !json { print("preload: signing \(perWorkerBatches * concurrency * request) transactions of \(preloadBatch) keys…") }
            let plan = try LoadPlan(shape: shape, keys: signers, nonces: nonces, chainId: chainId, hasher: hasher, endpoints: endpoints)
            let recorder = LoadRecorder(transactions: plan.transactionCount, batch: request)
            let events = try EventReader(endpoint: endpoints[0], plan: plan, recorder: recorder)
            let workers = (0..<concurrency).map { number in
                LoadWorker(
                    number: number, plan: plan, endpoint: endpoints[number % endpoints.count],
                    schedule: .init(mode: .closed, interval: 0, offset: 0, end: .max, commitTimeoutNanoseconds: 120_000_000_000),
                    recorder: recorder)
            }
            for worker in workers { worker.join() }
            recorder.snapshot { $0.stopping = true }
            _ = events
            if let error = workers.compactMap(\.error).first { throw CommandError("preload: \(error)") }
            let (committed, failed, rejected) = recorder.snapshot {
                ($0.committed.count { $0 != LoadRecorder.never }, $0.failed, $0.rejections)
            }
            guard committed == plan.transactionCount, failed == 0, rejected.isEmpty else {
                throw CommandError(
                    "preload: \(committed) of \(plan.transactionCount) transactions committed, \(failed) failed, refused: \(rejected)")
            }
            nonces = plan.nextNonces
            written += plan.transactionCount * preloadBatch
        }
        return written
    }

    /// Waits until every node reports a store that owes no compaction and runs none, for
    /// at most `limit`, and tells whether they all did: a run that starts with a backlog
    /// left by whatever came before it (an import, another run) pays for that too. The
    /// 10M-key preload leaves none (docs/benchmarks.md, session 23).
    static func waitForSettledStores(_ urls: [String], within limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        let clients = urls.map { NodeClient(base: $0) }
        while true {
            var all = true
            for client in clients {
                let status: StatusView = try await client.get("/v1/status")
                guard let storage = status.storage else {
                    throw CommandError("\(client.base) reports no storage backlog (a node of an earlier release?): --settle-max needs it")
                }
                if !storage.settled {
                    all = false
                    break
                }
            }
            if all { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .seconds(1))
        }
    }

    private func sleep(until time: Int64, _ recorder: LoadRecorder) async throws {
        let left = time - recorder.now
        if left > 0 { try await Task.sleep(for: .nanoseconds(left)) }
    }

    static func render(_ report: Report) {
        let setup = report.setup
        Swift.print(
            "\(setup.workload) \(setup.mode)-loop\(setup.rate.map { String(format: " at %.0f tx/s", $0) } ?? ""), "
                + "\(setup.concurrency) workers × \(setup.batch) per request, \(setup.validators) validators, \(setup.scheme)/\(setup.hashSuite), "
                + "\(Int(setup.durationSeconds)) s after \(Int(setup.warmupSeconds)) s warm-up")
        Swift.print(String(format: "  submitted      %9.0f tx/s", report.submittedTps))
        Swift.print(String(format: "  committed      %9.0f tx/s   (%d transactions, %d failed receipts, %d uncommitted)", report.committedTps, report.committed, report.failedReceipts, report.uncommitted))
        if let latency = report.latencyMs {
            Swift.print(String(format: "  latency ms     p50 %.0f   p95 %.0f   p99 %.0f   max %.0f", latency.p50, latency.p95, latency.p99, latency.max))
        }
        if let admission = report.admissionMs {
            Swift.print(String(format: "  admission ms   p50 %.0f   p95 %.0f   p99 %.0f   max %.0f   (request → answer)", admission.p50, admission.p95, admission.p99, admission.max))
        }
        if let before = report.toProposalMs, let after = report.afterProposalMs {
            Swift.print(String(format: "  to proposal ms p50 %.0f   p95 %.0f   p99 %.0f   max %.0f   (request → block header time)", before.p50, before.p95, before.p99, before.max))
            Swift.print(String(format: "  after it ms    p50 %.0f   p95 %.0f   p99 %.0f   max %.0f   (header time → seen committed)", after.p50, after.p95, after.p99, after.max))
        }
        if let interval = report.blockIntervalMs, let perBlock = report.transactionsPerBlock {
            Swift.print(String(format: "  blocks         every %.0f ms, %.0f transactions each", interval, perBlock))
        }
        if !report.rejected.isEmpty {
            Swift.print("  rejected       " + report.rejected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        for node in report.nodes {
            Swift.print(
                String(format: "  node%d          CPU %.0f%%   peak RSS %.0f MiB", node.node, node.cpuPercent, node.peakRssMib)
                    + (node.diskBytesPerTransaction.map { String(format: "   disk %.0f B/tx", $0) } ?? ""))
        }
        Swift.print(
            String(
                format: "  bound          %.0f tx/s = %.0f verifications/s per core (before %.0f, after %.0f) × %d cores ÷ %d validators",
                report.boundTps, report.verifyRatePerCore, report.verifyRateBefore, report.verifyRateAfter, setup.cores, setup.validators))
        Swift.print(String(format: "  ratio          %.0f%% of the bound", report.ratioToBound * 100))
        Swift.print(
            String(
                format: "  all cores      %.0f verifications/s verifying together: bound %.0f tx/s, ratio %.0f%%",
                report.verifyRateAllCores, report.boundAllCoresTps, report.ratioToAllCoresBound * 100))
        Swift.print(String(format: "  generator      CPU %.0f%% (this process)", report.generatorCpuPercent))
        for note in report.notes { Swift.print("  note: \(note)") }
    }
}

/// Percentiles of latencies in milliseconds.
struct LatencySummary: Codable {
    var p50: Double
    var p95: Double
    var p99: Double
    var max: Double
    var mean: Double

    init?(milliseconds: [Double]) {
        guard !milliseconds.isEmpty else { return nil }
        let sorted = milliseconds.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        p50 = percentile(0.50)
        p95 = percentile(0.95)
        p99 = percentile(0.99)
        max = sorted.last!
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
