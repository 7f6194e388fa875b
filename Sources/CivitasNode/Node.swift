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

/// A Civitas node: admits transactions, orders them into blocks, executes them and
/// commits block, receipts and state in one durable write before reporting anything.
///
/// This version runs the whole validator set on one node (a single validator); the
/// consensus steps (leader, safety rules, vote, quorum certificate) are the real ones,
/// so the multi-validator protocol plugs in behind the same interface.
public actor Node {
    public nonisolated let genesis: Genesis
    public nonisolated let genesisHash: Hash
    public nonisolated let hasher: ChainHasher
    public nonisolated let validators: ValidatorSet
    public nonisolated let verifier = SignatureVerifiers()
    nonisolated let logger: Logger

    private let ledger: Ledger
    private let state: StateStore
    private let executor: Executor
    private let validatorKey: PrivateKey?
    private let validatorIndex: UInt16?
    private var safety: SafetyRules
    private var mempool: Mempool
    private var head: CommittedBlock
    private let limits: NodeLimits

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
    private let commitTimer = Metrics.Timer(label: "civitas_block_commit_seconds")

    public init(
        genesis: Genesis, store: any KeyValueStore, validatorKey: PrivateKey?, limits: NodeLimits = .init(),
        logger: Logger = Logger(label: "civitas.node")
    ) throws {
        try genesis.validate()
        self.genesis = genesis
        self.hasher = ChainHasher(genesis.hashSuite)
        self.genesisHash = genesis.hash(using: hasher)
        self.validators = try genesis.validatorSet()
        self.logger = logger
        self.limits = limits
        guard validators.validators.count == 1 else {
            throw NodeError(
                .unsupportedValidatorSet,
                "genesis lists \(validators.validators.count) validators; this node runs single-validator chains")
        }
        if let validatorKey {
            guard let index = validators.index(of: validatorKey.publicKey) else {
                throw NodeError(.notAValidator, "key \(validatorKey.publicKey) is not a validator in genesis")
            }
            validatorIndex = index
        } else {
            validatorIndex = nil
        }
        self.validatorKey = validatorKey
        self.ledger = Ledger(store: store, hasher: hasher)
        self.state = StateStore(store: store, hasher: hasher)
        self.executor = Executor(chainId: genesis.chainId, hasher: hasher)
        self.mempool = Mempool(limits: limits.mempool)
        self.head = try Self.openChain(genesis: genesis, genesisHash: genesisHash, ledger: ledger, state: state, hasher: hasher)
        let safetyData = try ledger.safetyData().map { try SafetyData(canonicalBytes: $0) }
        self.safety = SafetyRules(data: safetyData ?? SafetyData(epoch: 0))
        let opened = head.block.header
        logger.info("chain \(genesis.chainId) at height \(opened.height), state root \(opened.stateRoot)")
    }

    /// Loads the last committed block, or writes block 0 from the genesis on first start.
    private static func openChain(
        genesis: Genesis, genesisHash: Hash, ledger: Ledger, state: StateStore, hasher: ChainHasher
    ) throws -> CommittedBlock {
        if let height = try ledger.committedHeight() {
            guard try ledger.genesisHash() == genesisHash else {
                throw NodeError(.genesisMismatch, "the data directory holds another chain than this genesis file")
            }
            guard let block = try ledger.block(at: height) else {
                throw NodeError(.storage, "committed height \(height) has no block")
            }
            return block
        }
        let (root, batch) = try state.stage(root: StateTree.emptyRoot, changes: Executor.genesisChanges(genesis, hasher: hasher))
        let header = BlockHeader(
            chainId: genesis.chainId, epoch: 0, height: 0, round: 0, parent: genesisHash, proposer: 0,
            timestampMilliseconds: genesis.timestampMilliseconds, transactionCount: 0, transactionsRoot: .zero,
            receiptsRoot: .zero, stateRoot: root)
        let block = Block(header: header, transactions: [])
        try ledger.commit(block, certificate: nil, receipts: [], transactionIds: [], genesisHash: genesisHash, batch: batch)
        return CommittedBlock(block: block, hash: header.hash(using: hasher), certificate: nil)
    }

    // MARK: Admission

    /// Checks a verified transaction against the chain and admits it to the mempool.
    public func submit(_ transaction: VerifiedTransaction) throws(TransactionError) {
        let body = transaction.body
        let nextHeight = head.block.header.height + 1
        guard body.chainId == genesis.chainId else {
            throw TransactionError(.wrongChain, "transaction for chain \(body.chainId), this is \(genesis.chainId)")
        }
        guard genesis.signatureSchemes.contains(body.sender.scheme) else {
            throw TransactionError(.schemeNotAccepted, "this chain does not accept \(body.sender.scheme) signatures")
        }
        guard body.expiryHeight >= nextHeight else {
            throw TransactionError(.expired, "expired at height \(body.expiryHeight); next block is \(nextHeight)")
        }
        let intrinsic = GasSchedule.intrinsic(transactionBytes: transaction.encodedSize)
        guard body.gasLimit >= intrinsic else {
            throw TransactionError(.gasLimitTooLow, "gas limit \(body.gasLimit) is below the intrinsic \(intrinsic)")
        }
        guard body.gasLimit <= genesis.consensus.blockGasMax else {
            throw TransactionError(.gasLimitTooHigh, "gas limit \(body.gasLimit) exceeds the block's \(genesis.consensus.blockGasMax)")
        }
        let sender = Address(of: body.sender, using: hasher)
        guard (try? state.value(for: StateKeys.organisation(sender))) ?? nil != nil else {
            throw TransactionError(.unknownSender, "sender \(body.sender.scheme):\(sender) belongs to no organisation")
        }
        guard (try? ledger.location(ofTransaction: transaction.id)) ?? nil == nil else {
            throw TransactionError(.duplicate, "transaction \(transaction.id) is already committed")
        }
        try mempool.admit(transaction, sender: sender, accountNonce: accountNonce(sender))
        mempoolGauge.record(mempool.count)
    }

    private func accountNonce(_ address: Address) -> UInt64 {
        (try? StateKeys.decodeU64(state.value(for: StateKeys.nonce(address)))) ?? 0
    }

    // MARK: Block production

    /// Produces, executes and commits one block if transactions are waiting. Returns the
    /// committed block, or nil when there was nothing to do or this node is no validator.
    @discardableResult
    public func produceBlock(timestampMilliseconds: UInt64) throws -> CommittedBlock? {
        guard let validatorKey, let validatorIndex, mempool.count > 0 else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let parent = head.block.header
        let height = parent.height + 1
        let round = height
        let picked = mempool.reap(
            countMax: Int(genesis.consensus.blockTransactionsMax), gasMax: genesis.consensus.blockGasMax,
            accountNonce: accountNonce)
        if picked.isEmpty { return nil }

        let execution = executor.execute(picked, height: height, base: state)
        let (stateRoot, batch) = try state.stage(root: parent.stateRoot, changes: execution.changes)
        let ids = picked.map(\.id)
        let header = BlockHeader(
            chainId: genesis.chainId, epoch: validators.epoch, height: height, round: round, parent: head.hash,
            proposer: validatorIndex, timestampMilliseconds: max(timestampMilliseconds, parent.timestampMilliseconds),
            transactionCount: UInt32(picked.count), transactionsRoot: hasher.merkleRoot(ids),
            receiptsRoot: hasher.merkleRoot(execution.receipts.map { $0.hash(using: hasher) }), stateRoot: stateRoot)
        let block = Block(header: header, transactions: picked.map(\.transaction))
        let blockHash = header.hash(using: hasher)

        // Persist before you vote: the safety data is durable before the signature exists.
        // A single validator is the whole quorum: its certificate commits the block itself.
        let proposal = VoteData(
            chainId: genesis.chainId, epoch: validators.epoch, round: round, height: height, blockHash: blockHash,
            commitHeight: height, commitHash: blockHash)
        let vote = proposal
        let persist = try safety.vote(blockRound: round, certifiedRound: round - 1, timeout: nil)
        try ledger.persistSafety(persist.canonicalBytes)
        var collector = VoteCollector(validators: validators, vote: vote)
        guard let certificate = collector.add(validator: validatorIndex, signature: try validatorKey.sign(vote.signingMessage)) else {
            preconditionFailure("a single validator holds the whole quorum")
        }

        try ledger.commit(block, certificate: certificate, receipts: execution.receipts, transactionIds: ids, genesisHash: nil, batch: batch)
        head = CommittedBlock(block: block, hash: blockHash, certificate: certificate)
        afterCommit(block: block, hash: blockHash, ids: ids, receipts: execution.receipts, senders: picked.map { Address(of: $0.body.sender, using: hasher) })
        commitTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        return head
    }

    private func afterCommit(block: Block, hash: Hash, ids: [Hash], receipts: [Receipt], senders: [Address]) {
        let height = block.header.height
        mempool.prune(senders: Set(senders), nextHeight: height + 1, accountNonce: accountNonce)
        if height % 64 == 0 { mempool.pruneExpired(nextHeight: height + 1) }
        let failures = receipts.filter { !$0.status.isSuccess }.count
        committedCounter.increment(by: receipts.count)
        failedCounter.increment(by: failures)
        blocksCounter.increment()
        heightGauge.record(Int(height))
        mempoolGauge.record(mempool.count)

        for (index, id) in ids.enumerated() {
            guard let pending = waiters.removeValue(forKey: id) else { continue }
            waiterCount -= pending.count
            let outcome = TransactionOutcome(
                transaction: block.transactions[index], id: id,
                location: TransactionLocation(height: height, index: UInt32(index)), blockHash: hash, receipt: receipts[index])
            for continuation in pending.values { continuation.resume(returning: outcome) }
        }
        let event = ChainEvent(
            height: height, blockHash: hash, stateRoot: block.header.stateRoot, transactionCount: ids.count,
            transactions: zip(ids, receipts).map { .init(transactionId: $0, success: $1.status.isSuccess, events: $1.events) })
        for subscriber in subscribers.values { subscriber.yield(event) }
    }

    /// Produces blocks until cancelled: every block interval, if transactions wait.
    public func run(clock: some Clock<Duration> = ContinuousClock(), now: @Sendable () -> UInt64 = wallClockMilliseconds) async {
        let interval = Duration.milliseconds(Int64(genesis.consensus.blockIntervalMilliseconds))
        while !Task.isCancelled {
            do { try await clock.sleep(for: interval) } catch { return }
            do { try produceBlock(timestampMilliseconds: now()) } catch {
                // A failed commit leaves the store at the previous block; going on could
                // report blocks that are not durable. Stop; a restart resumes from disk.
                logger.critical("block commit failed: \(error)")
                fatalError("block commit failed: \(error)")
            }
        }
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

    // MARK: Queries

    public func status() -> NodeStatus {
        NodeStatus(
            chainId: genesis.chainId, hashSuite: genesis.hashSuite, height: head.block.header.height, blockHash: head.hash,
            stateRoot: head.block.header.stateRoot, mempoolTransactions: mempool.count, mempoolBytes: mempool.byteCount,
            validatorIndex: validatorIndex, genesisHash: genesisHash)
    }

    public var latest: CommittedBlock { head }

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
            guard let location = try ledger.location(ofTransaction: id), let block = try ledger.block(at: location.height),
                let receipt = try ledger.receipt(at: location)
            else { return nil }
            return TransactionOutcome(
                transaction: block.block.transactions[Int(location.index)], id: id, location: location, blockHash: block.hash,
                receipt: receipt)
        } catch { throw NodeError(.storage, error.description) }
    }

    public func isPending(_ id: Hash) -> Bool { mempool.contains(id) }

    /// The value of a raw state key at `height` (latest when nil) with its proof.
    public func prove(_ key: [UInt8], height: UInt64?) throws(NodeError) -> StateProofBundle {
        let target = height ?? head.block.header.height
        guard target <= head.block.header.height else {
            throw NodeError(.heightNotCommitted, "height \(target) is above the committed \(head.block.header.height)")
        }
        guard let committed = try block(at: target) else { throw NodeError(.notFound, "no block at \(target)") }
        guard let certificate = committed.certificate else {
            throw NodeError(.noCertifiedBlock, "block \(target) is the genesis block, which has no certificate; prove at height ≥ 1")
        }
        do {
            let proof = try state.tree.prove(key, root: committed.block.header.stateRoot)
            return StateProofBundle(header: committed.block.header, certificate: certificate, proof: proof)
        } catch { throw NodeError(.storage, error.description) }
    }

    /// The latest committed value of a raw state key (no proof).
    public func value(_ key: [UInt8]) -> [UInt8]? { try? state.value(for: key) }
}

public struct NodeLimits: Sendable, Codable, Equatable {
    public var mempool: MempoolLimits
    public var waitersMax: Int
    public var subscribersMax: Int
    public var eventBufferMax: Int

    public init(mempool: MempoolLimits = .init(), waitersMax: Int = 20_000, subscribersMax: Int = 256, eventBufferMax: Int = 256) {
        self.mempool = mempool
        self.waitersMax = waitersMax
        self.subscribersMax = subscribersMax
        self.eventBufferMax = eventBufferMax
    }
}

@Sendable public func wallClockMilliseconds() -> UInt64 {
    UInt64(Date().timeIntervalSince1970 * 1000)
}
