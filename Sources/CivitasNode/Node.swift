import CivitasConsensus
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasState
import CivitasStorage
import CivitasVM
import Foundation
import Logging
import Metrics
import Synchronization

/// Where a node's messages to other validators go. The network layer implements it;
/// a node without peers (a single validator) has none.
public protocol PeerTransport: Sendable {
    /// `validator` is an index in the current epoch's set.
    func send(_ message: PeerMessage, to validator: UInt16)
    func broadcast(_ message: PeerMessage)
    /// A new epoch began: from now on indexes refer to its validators.
    func membershipChanged(_ membership: EpochMembership)
}

extension PeerTransport {
    public func membershipChanged(_ membership: EpochMembership) {}
}

/// How a node keeps time: the system clock with real timers, or a clock that moves only
/// when `advance(byMilliseconds:)` is called, for tests that step the node.
public enum NodeTiming: Sendable {
    case realTime
    case manual(startMilliseconds: UInt64)
}

/// A Civitas node: the `Replica` (consensus, mempool, gossip, execution, storage,
/// catch-up) behind an actor, with timers, peers, commit waiters and event subscribers.
/// A block and its state are durable before anything reports them committed.
public actor Node {
    public nonisolated let genesis: Genesis
    public nonisolated let genesisHash: Hash
    public nonisolated let hasher: ChainHasher
    private nonisolated let currentMembership: Mutex<EpochMembership>
    public nonisolated let verifier = SignatureVerifiers()
    public nonisolated let logger: Logger

    private let replica: Replica
    private nonisolated let executorThread = NodeExecutor(name: "civitas-node")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executorThread.asUnownedSerialExecutor() }
    private nonisolated let store: any KeyValueStore
    /// Sendable and shared with the replica (its contract module cache included).
    public nonisolated let executor: Executor
    nonisolated let nodeCache: StateNodeCache
    nonisolated let stateVersions: StateVersions
    private nonisolated let prunerThread: PrunerThread
    private nonisolated let pruner: StatePruner
    private let ledger: Ledger
    private let state: StateStore
    private let limits: NodeLimits
    private let timing: NodeTiming
    private var transport: (any PeerTransport)?
    private var started = false
    private var manualNow: UInt64 = 0
    private var manualTimers: [(deadline: UInt64, sequence: UInt64, timer: ReplicaTimer)] = []
    private var timerSequence: UInt64 = 0

    private var waiters: [Hash: [Int: CheckedContinuation<TransactionOutcome?, Never>]] = [:]
    private var waiterCount = 0
    private var nextWaiterId = 0
    private var subscribers: [Int: AsyncStream<ChainEvent>.Continuation] = [:]
    private var nextSubscriberId = 0

    private let committedCounter = Counter(label: "civitas_transactions_committed_total")
    private let failedCounter = Counter(label: "civitas_transactions_failed_total")
    private let blocksCounter = Counter(label: "civitas_blocks_committed_total")
    private let heightGauge = Gauge(label: "civitas_block_height")
    private let mempoolGauge = Gauge(label: "civitas_mempool_transactions")
    private let roundGauge = Gauge(label: "civitas_consensus_round")
    private let stateCacheBytesGauge = Gauge(label: "civitas_state_cache_bytes")
    private let stateCacheNodesGauge = Gauge(label: "civitas_state_cache_nodes")
    private let stateNodeReadsCounter = Counter(label: "civitas_state_nodes_read_total")
    private var stateNodeReadsReported = 0
    private let statePrunedCounter = Counter(label: "civitas_state_nodes_pruned_total")
    private var statePrunedReported = 0
    private let stateOldestKeptGauge = Gauge(label: "civitas_state_oldest_kept_height")
    private let statePruneBehindGauge = Gauge(label: "civitas_state_prune_heights_behind")
    private let storePendingCompactionGauge = Gauge(label: "civitas_store_pending_compaction_bytes")
    private let storeLevel0FilesGauge = Gauge(label: "civitas_store_level0_files")
    private let storeRunningCompactionsGauge = Gauge(label: "civitas_store_running_compactions")

    public init(
        genesis: Genesis, store: any KeyValueStore, validatorKey: PrivateKey?, limits: NodeLimits = .init(),
        settings: ReplicaSettings = .init(), timing: NodeTiming = .realTime, transport: (any PeerTransport)? = nil,
        logger: Logger = Logger(label: "civitas.node")
    ) throws {
        guard limits.stateHeightsKept == 0 || limits.stateHeightsKept >= Int(StatePruner.keptHeightsMin) else {
            throw NodeError(
                .config, "limits.stateHeightsKept must be 0 (keep every state) or at least \(StatePruner.keptHeightsMin), got \(limits.stateHeightsKept)")
        }
        self.replica = try Replica(
            genesis: genesis, store: store, validatorKey: validatorKey, limits: limits.mempool,
            stateCacheBytes: limits.stateCacheMebibytes << 20, stateHeightsKept: UInt64(limits.stateHeightsKept), pruneInline: false,
            settings: settings, logger: logger)
        pruner = replica.pruner
        prunerThread = PrunerThread(pruner: replica.pruner, logger: logger)
        self.genesis = genesis
        self.hasher = replica.hasher
        self.genesisHash = replica.genesisHash
        self.currentMembership = Mutex(replica.membership())
        self.logger = logger
        self.limits = limits
        self.timing = timing
        self.transport = transport
        if case .manual(let start) = timing { manualNow = start }
        self.store = replica.store
        self.executor = replica.executor
        self.nodeCache = replica.nodeCache
        self.stateVersions = replica.stateVersions
        self.ledger = Ledger(store: replica.store, hasher: replica.hasher)
        self.state = StateStore(store: replica.store, hasher: replica.hasher, cache: replica.nodeCache, versions: replica.stateVersions)
        let opened = replica.head.block.header
        logger.info("chain \(genesis.chainId) at height \(opened.height), state root \(opened.stateRoot)")
    }

    deinit {
        executorThread.stop()
        prunerThread.stop()
    }

    /// The validators of the current epoch.
    public nonisolated var validators: ValidatorSet { currentMembership.withLock { $0.validators } }

    /// The current validators with the endpoints and CAs the network needs.
    public nonisolated var membership: EpochMembership { currentMembership.withLock { $0 } }

    private var now: UInt64 {
        if case .manual = timing { return manualNow }
        return wallClockMilliseconds()
    }

    /// Connects the node to its peers; messages sent before this are dropped (peers
    /// catch up on what they missed).
    public func attach(_ transport: any PeerTransport) {
        self.transport = transport
    }

    private func startIfNeeded() {
        guard !started else { return }
        started = true
        do { perform(try replica.start(now: now)) } catch {
            logger.critical("node failed to start: \(error)")
            fatalError("node failed to start: \(error)")
        }
    }

    // MARK: Inputs

    /// Checks a verified transaction against the chain and admits it to the mempool.
    public func submit(_ transaction: VerifiedTransaction) throws(TransactionError) {
        startIfNeeded()
        perform(try replica.submit(transaction, now: now))
        mempoolGauge.record(replica.mempool.count)
    }

    /// Admits verified transactions in one step; for each, nil or why it was refused.
    public func submit(_ transactions: [VerifiedTransaction]) -> [TransactionError?] {
        startIfNeeded()
        let (errors, effects) = replica.submit(transactions, now: now)
        perform(effects)
        mempoolGauge.record(replica.mempool.count)
        return errors
    }

    /// A message from validator `peer`, decoded by the transport.
    public func receive(_ message: PeerMessage, from peer: UInt16) {
        startIfNeeded()
        perform(replica.receive(message, from: peer, now: now))
    }

    /// Transactions gossiped by `peer`: their signatures are checked here, off the
    /// node's own executor and across cores, before they reach the mempool.
    public nonisolated func receiveGossip(_ transactions: [SignedTransaction], from peer: UInt16) async {
        let verified = await ParallelVerifier.verify(transactions, hasher: hasher, verifier: verifier) { transaction in
            (transaction, nil)
        }
        await admitGossip(verified.compactMap { try? $0.get() })
    }

    private func admitGossip(_ transactions: [VerifiedTransaction]) {
        startIfNeeded()
        perform(replica.receive(gossiped: transactions, now: now))
        mempoolGauge.record(replica.mempool.count)
    }

    /// Runs the node until cancelled: its timers fire on their own.
    public func run() async {
        startIfNeeded()
        warmStateCache()
        // An archive node lists nothing to prune.
        if pruner.keptHeights > 0 { prunerThread.start() }
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(3_600)) } catch { return }
        }
    }

    /// Fills the state cache from the committed tree on a thread of its own, so that the
    /// first blocks after a restart do not each read their paths from disk. It only adds
    /// committed nodes (under their versions, so never stale) and stops when the budget is full, the
    /// tree is read, or the node is gone.
    private func warmStateCache() {
        let tree = StateTree(store: store, hasher: hasher, cache: nodeCache, versions: stateVersions)
        let root = replica.head.block.header.stateRoot
        let logger = logger
        let thread = Thread { [weak self] in
            let start = ContinuousClock.now
            let read = tree.warm(root: root) { self == nil }
            let elapsed = ContinuousClock.now - start
            logger.info("state cache warmed: \(read) tree nodes read in \(elapsed)")
        }
        thread.name = "civitas-state-warm"
        thread.start()
    }

    /// Moves a manual clock forward, firing every timer that falls due on the way in
    /// order. Only for nodes created with `.manual` timing.
    public func advance(byMilliseconds milliseconds: UInt64) {
        guard case .manual = timing else { preconditionFailure("advance(byMilliseconds:) needs manual timing") }
        startIfNeeded()
        let target = manualNow + milliseconds
        var fired = 0
        while let next = manualTimers.min(by: { ($0.deadline, $0.sequence) < ($1.deadline, $1.sequence) }), next.deadline <= target {
            manualTimers.removeAll { $0.sequence == next.sequence }
            manualNow = max(manualNow, next.deadline)
            perform(replica.timerFired(next.timer, now: manualNow))
            fired += 1
            precondition(fired < 1_000_000, "timers keep rescheduling themselves at no distance")
        }
        manualNow = target
    }

    private func fire(_ timer: ReplicaTimer) {
        perform(replica.timerFired(timer, now: now))
    }

    private func perform(_ effects: [ReplicaEffect]) {
        for effect in effects {
            switch effect {
            case .send(let message, let peer):
                transport?.send(message, to: peer)
            case .broadcast(let message):
                transport?.broadcast(message)
            case .timer(let timer, let milliseconds):
                schedule(timer, after: milliseconds)
            case .committed(let notice):
                committed(notice)
            case .epochChanged(let membership):
                currentMembership.withLock { $0 = membership }
                transport?.membershipChanged(membership)
            }
        }
        roundGauge.record(Int(replica.consensus.round))
    }

    private func schedule(_ timer: ReplicaTimer, after milliseconds: UInt64) {
        switch timing {
        case .manual:
            timerSequence += 1
            manualTimers.append((manualNow + milliseconds, timerSequence, timer))
        case .realTime:
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(Int64(milliseconds)))
                await self?.fire(timer)
            }
        }
    }

    private func committed(_ notice: CommitNotice) {
        let height = notice.block.header.height
        let failures = notice.receipts.filter { !$0.status.isSuccess }.count
        committedCounter.increment(by: notice.receipts.count)
        failedCounter.increment(by: failures)
        blocksCounter.increment()
        heightGauge.record(Int(height))
        let pruneBehind = replica.pruner.heightsBehind
        if pruneBehind > 0 { prunerThread.poke() }
        mempoolGauge.record(replica.mempool.count)
        stateCacheBytesGauge.record(nodeCache.bytes)
        stateCacheNodesGauge.record(nodeCache.count)
        let nodesRead = nodeCache.nodesReadFromStore
        if nodesRead > stateNodeReadsReported {
            stateNodeReadsCounter.increment(by: nodesRead - stateNodeReadsReported)
            stateNodeReadsReported = nodesRead
        }
        let pruned = replica.pruner.prunedNodes.load(ordering: .relaxed)
        if pruned > statePrunedReported {
            statePrunedCounter.increment(by: pruned - statePrunedReported)
            statePrunedReported = pruned
        }
        stateOldestKeptGauge.record(Int(replica.pruner.oldestKept))
        statePruneBehindGauge.record(Int(pruneBehind))
        if let backlog = store.backlog {
            storePendingCompactionGauge.record(Int(clamping: backlog.pendingCompactionBytes))
            storeLevel0FilesGauge.record(backlog.level0Files)
            storeRunningCompactionsGauge.record(backlog.runningCompactions)
        }
        for (index, id) in notice.transactionIds.enumerated() {
            guard let pending = waiters.removeValue(forKey: id) else { continue }
            waiterCount -= pending.count
            let outcome = TransactionOutcome(
                transaction: notice.block.transactions[index], id: id,
                location: TransactionLocation(height: height, index: UInt32(index)), blockHash: notice.hash,
                receipt: notice.receipts[index])
            for continuation in pending.values { continuation.resume(returning: outcome) }
        }
        let event = ChainEvent(
            height: height, blockHash: notice.hash, stateRoot: notice.block.header.stateRoot,
            timestampMilliseconds: notice.block.header.timestampMilliseconds, proposer: notice.block.header.proposer,
            transactionCount: notice.transactionIds.count,
            transactions: zip(notice.transactionIds, notice.receipts).map {
                .init(transactionId: $0, success: $1.status.isSuccess, events: $1.events)
            })
        for subscriber in subscribers.values { subscriber.yield(event) }
    }

    // MARK: Waiting and streaming

    /// The outcome of `id` once committed, or nil if it is not committed within `timeout`.
    public func waitForCommit(_ id: Hash, timeout: Duration) async throws(NodeError) -> TransactionOutcome? {
        if let outcome = try transaction(id) { return outcome }
        guard waiterCount < limits.waitersMax else {
            throw NodeError(.tooManyWaiters, "\(waiterCount) requests are already waiting for commits")
        }
        let waiterId = nextWaiterId
        nextWaiterId += 1
        waiterCount += 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expireWaiter(id, waiterId)
        }
        let outcome = await withCheckedContinuation { continuation in
            waiters[id, default: [:]][waiterId] = continuation
        }
        timer.cancel()
        return outcome
    }

    private func expireWaiter(_ id: Hash, _ waiterId: Int) {
        guard let continuation = waiters[id]?.removeValue(forKey: waiterId) else { return }
        if waiters[id]?.isEmpty == true { waiters[id] = nil }
        waiterCount -= 1
        continuation.resume(returning: nil)
    }

    /// A stream of committed blocks and their events. A subscriber that falls more than
    /// `eventBufferMax` blocks behind loses the oldest ones rather than growing memory.
    public func subscribe() throws(NodeError) -> AsyncStream<ChainEvent> {
        guard !subscriptionsEnded else { throw NodeError(.stopping, "the node is stopping") }
        guard subscribers.count < limits.subscribersMax else {
            throw NodeError(.tooManySubscribers, "\(subscribers.count) event subscribers already")
        }
        let id = nextSubscriberId
        nextSubscriberId += 1
        let (stream, continuation) = AsyncStream<ChainEvent>.makeStream(bufferingPolicy: .bufferingNewest(limits.eventBufferMax))
        continuation.onTermination = { [weak self] _ in Task { await self?.unsubscribe(id) } }
        subscribers[id] = continuation
        return stream
    }

    private func unsubscribe(_ id: Int) { subscribers[id] = nil }

    private var subscriptionsEnded = false

    /// Ends every event stream and refuses new ones. A stopping server waits for its open
    /// responses, and an event stream on a quiet chain would otherwise never end.
    public func endSubscriptions() {
        subscriptionsEnded = true
        for subscriber in subscribers.values { subscriber.finish() }
        subscribers.removeAll()
    }

    // MARK: Queries

    public func status() -> NodeStatus {
        let head = replica.head
        return NodeStatus(
            chainId: genesis.chainId, hashSuite: genesis.hashSuite, height: head.block.header.height, blockHash: head.hash,
            stateRoot: head.block.header.stateRoot, mempoolTransactions: replica.mempool.count,
            mempoolBytes: replica.mempool.byteCount, validatorIndex: replica.validatorIndex, genesisHash: genesisHash,
            round: replica.consensus.round, epoch: replica.validators.epoch, storage: store.backlog)
    }

    public var latest: CommittedBlock { replica.head }

    public func block(at height: UInt64) throws(NodeError) -> CommittedBlock? {
        do { return try ledger.block(at: height) } catch { throw NodeError(.storage, error.description) }
    }

    public func block(hash: Hash) throws(NodeError) -> CommittedBlock? {
        do {
            guard let height = try ledger.height(ofBlock: hash) else { return nil }
            return try ledger.block(at: height)
        } catch { throw NodeError(.storage, error.description) }
    }

    public func transaction(_ id: Hash) throws(NodeError) -> TransactionOutcome? {
        do {
            guard let (location, receipt) = try ledger.receipt(ofTransaction: id), let block = try ledger.block(at: location.height)
            else { return nil }
            return TransactionOutcome(
                transaction: block.block.transactions[Int(location.index)], id: id, location: location, blockHash: block.hash,
                receipt: receipt)
        } catch { throw NodeError(.storage, error.description) }
    }

    public func isPending(_ id: Hash) -> Bool { replica.mempool.contains(id) }

    /// The value of a raw state key at `height` (latest when nil) with its proof.
    public func prove(_ key: [UInt8], height: UInt64?) throws(NodeError) -> StateProofBundle {
        try replica.prove(key, height: height)
    }

    /// The oldest height whose state this node keeps whole (`limits.stateHeightsKept`).
    public nonisolated var stateOldestKept: UInt64 { pruner.oldestKept }

    /// Whether the pruning that commits so far allow was done within `seconds` (it runs
    /// on a thread of its own once `run()` is called).
    public nonisolated func waitForPruning(seconds: Double) -> Bool { prunerThread.waitUntilCaughtUp(seconds: seconds) }

    /// The latest committed value of a raw state key (no proof).
    public func value(_ key: [UInt8]) -> [UInt8]? { try? state.value(for: key) }

    /// Runs a contract method read-only on the latest committed state. It runs on the
    /// caller's task, not the node's: a long query (bounded by its gas) never holds up
    /// consensus, and it reads the tree at one root, so a commit meanwhile changes nothing
    /// it sees.
    public nonisolated func queryContract(
        _ contract: Address, method: String, arguments: [UInt8], caller: Address, gasLimit: UInt64
    ) async -> (result: ContractQueryResult, height: UInt64) {
        let head = await latest.block.header
        let tree = StateTree(store: store, hasher: hasher, cache: nodeCache, versions: stateVersions)
        let reader = TreeReader(tree: tree, root: head.stateRoot)
        let result = executor.query(
            contract: contract, method: method, arguments: arguments, caller: caller, gasLimit: gasLimit, height: head.height,
            base: reader)
        return (result, head.height)
    }
}

/// The state at one root, read through the tree.
struct TreeReader: StateReader {
    let tree: StateTree
    let root: Hash

    func value(for key: [UInt8]) throws(ExecutionError) -> [UInt8]? {
        do { return try tree.get(key, root: root) } catch {
            throw ExecutionError("state.unavailable", "state at root \(root) could not be read: \(error)")
        }
    }
}

public struct NodeLimits: Sendable, Codable, Equatable {
    public var mempool: MempoolLimits
    public var waitersMax: Int
    public var subscribersMax: Int
    public var eventBufferMax: Int
    /// Memory for the state tree's internal nodes. A budget above what the current tree
    /// holds (about 100 bytes per key) keeps every block's tree update off the disk.
    public var stateCacheMebibytes: Int
    /// How many heights below the committed one keep their whole state (reads and proofs
    /// at them, snapshots): the tree nodes only older states name are deleted. Zero keeps
    /// every state (an archive node). See ADR 0013.
    public var stateHeightsKept: Int

    public init(
        mempool: MempoolLimits = .init(), waitersMax: Int = 20_000, subscribersMax: Int = 256, eventBufferMax: Int = 256,
        stateCacheMebibytes: Int = StateNodeCache.defaultCapacityBytes >> 20, stateHeightsKept: Int = Int(StatePruner.keptHeightsDefault)
    ) {
        self.mempool = mempool
        self.stateCacheMebibytes = stateCacheMebibytes
        self.stateHeightsKept = stateHeightsKept
        self.waitersMax = waitersMax
        self.subscribersMax = subscribersMax
        self.eventBufferMax = eventBufferMax
    }
}

@Sendable public func wallClockMilliseconds() -> UInt64 {
    UInt64(Date().timeIntervalSince1970 * 1000)
}
