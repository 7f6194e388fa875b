import CivitasConsensus
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasState
import CivitasStorage
import CivitasVM
import Logging

/// When the replica wants to be called back.
public enum ReplicaTimer: Hashable, Sendable {
    case round(epoch: UInt64, round: UInt64)
    case propose
    case gossip
    case sync
    /// A snapshot request, by its sequence number, went unanswered.
    case snapshot(Int)
}

/// What the replica asks of its environment. The production node sends these over the
/// network and its clock; the simulator delivers them itself.
public enum ReplicaEffect: Sendable {
    case send(PeerMessage, to: UInt16)
    case broadcast(PeerMessage)
    case timer(ReplicaTimer, afterMilliseconds: UInt64)
    /// A block is durable; waiters and subscribers may learn of it.
    case committed(CommitNotice)
    /// A new epoch began.
    case epochChanged(EpochMembership)
}

/// Who the validators of an epoch are and what the network needs to reach them: the
/// peer endpoints and TLS CAs that the genesis and governance recorded in the state.
public struct EpochMembership: Sendable, Equatable {
    public var validators: ValidatorSet
    /// `host:port` by validator key, for validators added by governance.
    public var addresses: [PublicKey: String]
    /// CA certificate (PEM) by organisation id.
    public var authorities: [String: String]
}

/// A committed block with what its transactions did.
public struct CommitNotice: Sendable {
    public var block: Block
    public var hash: Hash
    public var transactionIds: [Hash]
    public var receipts: [Receipt]
}

/// A block executed on its parent's (possibly uncommitted) state, not yet committed.
struct ExecutedBlock {
    var block: Block
    var hash: Hash
    var transactionIds: [Hash]
    var receipts: [Receipt]
    /// Tree nodes and flat-index writes: what committing the block adds to the store.
    var batch: WriteBatch
    /// The set of the next epoch when this block's execution changed it: the block is
    /// the last of its epoch.
    var nextValidators: ValidatorSet?
    /// What the block's state update left in the node cache, settled when the block
    /// commits or is dropped.
    var cachedNodes: StateTree.CachedNodes
}

public struct ReplicaSettings: Sendable, Equatable {
    public var roundTimeoutMilliseconds: UInt64
    public var roundTimeoutMaxMilliseconds: UInt64
    /// How long transactions collect before they are gossiped together.
    public var gossipMilliseconds: UInt64
    /// How long a catch-up request may go unanswered before it is sent again.
    public var syncRetryMilliseconds: UInt64

    public init(
        roundTimeoutMilliseconds: UInt64 = 1_000, roundTimeoutMaxMilliseconds: UInt64 = 30_000, gossipMilliseconds: UInt64 = 5,
        syncRetryMilliseconds: UInt64 = 1_000
    ) {
        self.roundTimeoutMilliseconds = roundTimeoutMilliseconds
        self.roundTimeoutMaxMilliseconds = roundTimeoutMaxMilliseconds
        self.gossipMilliseconds = gossipMilliseconds
        self.syncRetryMilliseconds = syncRetryMilliseconds
    }
}

/// One node's whole protocol as a deterministic step function: consensus, mempool,
/// gossip, execution, storage and catch-up. Inputs are calls (a client transaction, a
/// peer message, a timer) with the current time; outputs are effects. The production
/// node drives it from the network and the clock, the simulator from a seed, so both
/// run the same code.
public final class Replica {
    public let genesis: Genesis
    public let genesisHash: Hash
    public let hasher: ChainHasher
    /// The validators of the current epoch.
    public private(set) var validators: ValidatorSet
    public let settings: ReplicaSettings
    let verifier: any SignatureVerifier
    let store: any KeyValueStore
    let ledger: Ledger
    let state: StateStore
    let executor: Executor
    /// State-tree nodes, shared by the committed state and every block's view.
    public let nodeCache: StateNodeCache
    /// Shared by the committed state and every view of an uncommitted block (`StateVersions`).
    let stateVersions: StateVersions
    /// Deletes the tree nodes only states older than the node keeps name. With
    /// `pruneInline` it prunes in the step that commits (the simulator, tests); otherwise
    /// the node runs `pruner.prune` on a thread of its own, woken by commits.
    public let pruner: StatePruner
    let pruneInline: Bool
    /// A snapshot being served: its height's state stays whole until the hold runs out,
    /// renewed by each request for a page of it.
    private var snapshotHold: (height: UInt64, untilMilliseconds: UInt64)?
    static let snapshotHoldMilliseconds: UInt64 = 60_000

    /// The height of the snapshot being served, kept whole while peers ask for its pages.
    public var heldSnapshotHeight: UInt64? { snapshotHold.flatMap { $0.untilMilliseconds >= now ? $0.height : nil } }
    let validatorKey: PrivateKey?
    let logger: Logger

    public private(set) var consensus: Consensus
    public private(set) var mempool: Mempool
    public private(set) var head: CommittedBlock
    private var executed: [Hash: ExecutedBlock] = [:]
    /// Certificates of uncommitted blocks, learned from the proposals that extend them:
    /// what a lagging peer needs with the blocks.
    private var certificates: [Hash: QuorumCertificate] = [:]
    private var wantedProposal: ProposalRequest?
    private var lastProposalMilliseconds: UInt64 = 0
    /// A proposal timer is set and has not fired: admissions meanwhile need not reap the
    /// mempool again, nor set another.
    private var proposalTimerSet = false
    private var cachedView: (parent: Hash, head: Hash, view: StateStore)?
    private var gossip: [SignedTransaction] = []
    private var gossipScheduled = false
    private var syncInFlight = false
    /// Peers are asked in turn, starting with whoever last sent a consensus message (it
    /// knows at least the certificates it sent).
    private var syncRotation: UInt16 = 0
    private var lastSender: UInt16?
    private var reportedWork = false
    private var now: UInt64 = 0
    /// Hand-overs by the height of the last block of the epoch they end.
    private var epochChanges: [UInt64: EpochChange] = [:]

    public init(
        genesis: Genesis, store: any KeyValueStore, validatorKey: PrivateKey?, limits: MempoolLimits = .init(),
        stateCacheBytes: Int = StateNodeCache.defaultCapacityBytes, stateHeightsKept: UInt64 = 0, pruneInline: Bool = true,
        settings: ReplicaSettings = .init(), verifier: any SignatureVerifier = SignatureVerifiers(),
        logger: Logger = Logger(label: "civitas.replica")
    ) throws {
        try genesis.validate()
        // Senders' organisations and nonces are read by every admission and execution.
        let store = ValueCachingStore(base: store, prefix: .stateValue)
        self.genesis = genesis
        hasher = ChainHasher(genesis.hashSuite)
        genesisHash = genesis.hash(using: hasher)
        let genesisValidators = try genesis.validatorSet()
        validators = genesisValidators
        self.settings = settings
        self.verifier = verifier
        self.store = store
        self.validatorKey = validatorKey
        self.logger = logger
        ledger = Ledger(store: store, hasher: hasher)
        nodeCache = StateNodeCache(capacityBytes: stateCacheBytes)
        stateVersions = try StateVersions(store: store)
        state = StateStore(store: store, hasher: hasher, cache: nodeCache, versions: stateVersions)
        pruner = try StatePruner(store: store, keptHeights: stateHeightsKept, cache: nodeCache)
        self.pruneInline = pruneInline
        executor = Executor(chainId: genesis.chainId, hasher: hasher)
        mempool = Mempool(limits: limits)
        head = try Self.openChain(
            genesis: genesis, genesisHash: genesisHash, store: store, ledger: ledger, state: state, hasher: hasher, logger: logger)
        for change in try ledger.epochChanges() { epochChanges[change.lastHeader.height] = change }
        if let bytes = try state.value(for: ValidatorSet.stateKey) {
            validators = try ValidatorSet(canonicalBytes: bytes)
        }

        var safety = try ledger.safetyData().map { try SafetyData(canonicalBytes: $0) }
        // Safety data of an earlier epoch: this node has not voted in the current one.
        if let data = safety, data.epoch < validators.epoch { safety = SafetyData(epoch: validators.epoch) }
        consensus = Self.makeConsensus(
            chainId: genesis.chainId, validators: validators, settings: settings, hasher: hasher, key: validatorKey, verifier: verifier,
            safety: safety, head: head)
        retainState()
        if let validatorKey, validators.index(of: validatorKey.publicKey) == nil {
            logger.notice("key \(validatorKey.publicKey) is not a validator of epoch \(validators.epoch); following until a change adds it")
        }
    }

    private static func makeConsensus(
        chainId: String, validators: ValidatorSet, settings: ReplicaSettings, hasher: ChainHasher, key: PrivateKey?,
        verifier: any SignatureVerifier, safety: SafetyData?, head: CommittedBlock
    ) -> Consensus {
        let root = BlockInfo(header: head.block.header, hash: head.hash)
        // The last block of an epoch is committed by the old validators; the new epoch
        // starts from it with its own synthetic certificate.
        let rootCertificate =
            head.certificate.flatMap { $0.vote.epoch == validators.epoch ? $0 : nil }
            ?? Consensus.rootCertificate(chainId: chainId, epoch: validators.epoch, root: root)
        return Consensus(
            config: ConsensusConfig(
                chainId: chainId, validators: validators, roundTimeoutMilliseconds: settings.roundTimeoutMilliseconds,
                roundTimeoutMaxMilliseconds: settings.roundTimeoutMaxMilliseconds),
            hasher: hasher, key: key, verifier: verifier, safety: safety, root: root, rootCertificate: rootCertificate)
    }

    /// The hand-over that ends at block `height`, if an epoch ended there.
    public func epochChange(endingAt height: UInt64) -> EpochChange? { epochChanges[height] }

    /// All hand-overs since the genesis, oldest first: what a light client needs to
    /// check a certificate of the current epoch.
    public var epochHandOvers: [EpochChange] { epochChanges.values.sorted { $0.validators.epoch < $1.validators.epoch } }

    /// Loads the last committed block, or writes block 0 from the genesis on first start.
    static func openChain(
        genesis: Genesis, genesisHash: Hash, store: any KeyValueStore, ledger: Ledger, state: StateStore, hasher: ChainHasher,
        logger: Logger
    ) throws -> CommittedBlock {
        if let height = try ledger.committedHeight() {
            guard try ledger.genesisHash() == genesisHash else {
                throw NodeError(.genesisMismatch, "the data directory holds another chain than this genesis file")
            }
            // The format is checked before anything else is read: an older layout could be misread.
            let format = try ledger.format()
            guard (3...Ledger.storeFormat).contains(format) else {
                throw NodeError(
                    .storage,
                    "the data directory has store format \(format) and this node reads format \(Ledger.storeFormat): "
                        + "move it aside and let the node sync from its peers (docs/operations.md, upgrades)")
            }
            guard let block = try ledger.block(at: height) else {
                throw NodeError(.storage, "committed height \(height) has no block")
            }
            if format == 3 { try StoreMigration.migrate3To4(store: store, state: state, head: block, logger: logger) }
            // Format 5 reads format 4 as it is (see `Ledger.storeFormat`); recorded so that
            // an older node refuses the store rather than misread its new index entries.
            if format < Ledger.storeFormat { try ledger.recordFormat() }
            return block
        }
        let (root, batch) = try state.stage(root: StateTree.emptyRoot, changes: Executor.genesisChanges(genesis, hasher: hasher), staleAt: nil)
        let header = BlockHeader(
            chainId: genesis.chainId, epoch: 0, height: 0, round: 0, parent: genesisHash, proposer: 0,
            timestampMilliseconds: genesis.timestampMilliseconds, transactionCount: 0, transactionsRoot: .zero,
            receiptsRoot: .zero, stateRoot: root)
        let block = Block(header: header, transactions: [])
        try ledger.commit(block, certificate: nil, receipts: [], transactionIds: [], genesisHash: genesisHash, batch: batch)
        return CommittedBlock(block: block, hash: header.hash(using: hasher), certificate: nil)
    }

    public var validatorIndex: UInt16? { consensus.me }

    // MARK: Inputs

    public func start(now: UInt64) throws -> [ReplicaEffect] {
        defer { syncDeferredWrites() }
        self.now = now
        // The first block also waits one interval for transactions to collect.
        lastProposalMilliseconds = now
        var effects: [ReplicaEffect] = []
        // Blocks certified before a restart: executed again on their parents and handed
        // back to the consensus, which goes on from the highest.
        for entry in try ledger.certifiedBlocks(above: head.block.header.height) {
            let hash = entry.block.header.hash(using: hasher)
            guard entry.certificate.vote.blockHash == hash, validate(entry.block) else { continue }
            certificates[hash] = entry.certificate
            try apply(consensus.handle(.certifiedBlock(BlockInfo(header: entry.block.header, hash: hash), certificate: entry.certificate)), &effects)
        }
        try apply(consensus.start(), &effects)
        return effects
    }

    /// Admits a verified client transaction; it is gossiped to the other validators.
    public func submit(_ transaction: VerifiedTransaction, now: UInt64) throws(TransactionError) -> [ReplicaEffect] {
        let (errors, effects) = submit([transaction], now: now)
        if let error = errors[0] { throw error }
        return effects
    }

    /// Admits each of `transactions` or says why not (same order), then looks for work
    /// once for the whole batch.
    public func submit(_ transactions: [VerifiedTransaction], now: UInt64) -> (errors: [TransactionError?], effects: [ReplicaEffect]) {
        defer { syncDeferredWrites() }
        self.now = now
        var errors: [TransactionError?] = []
        errors.reserveCapacity(transactions.count)
        for transaction in transactions {
            do throws(TransactionError) {
                try admit(transaction)
                gossip.append(transaction.transaction)
                errors.append(nil)
            } catch {
                errors.append(error)
            }
        }
        var effects: [ReplicaEffect] = []
        guard errors.contains(where: { $0 == nil }) else { return (errors, effects) }
        if !gossipScheduled, validators.validators.count > 1 {
            gossipScheduled = true
            effects.append(.timer(.gossip, afterMilliseconds: settings.gossipMilliseconds))
        }
        do { try workChanged(&effects) } catch { fatal(error) }
        return (errors, effects)
    }

    /// Transactions gossiped by a peer, already verified (in parallel, off this path).
    /// Refusals are expected (another node saw them first, nonces moved) and dropped.
    public func receive(gossiped transactions: [VerifiedTransaction], now: UInt64) -> [ReplicaEffect] {
        defer { syncDeferredWrites() }
        self.now = now
        for transaction in transactions { try? admit(transaction) }
        var effects: [ReplicaEffect] = []
        do { try workChanged(&effects) } catch { fatal(error) }
        return effects
    }

    public func receive(_ message: PeerMessage, from peer: UInt16, now: UInt64) -> [ReplicaEffect] {
        defer { syncDeferredWrites() }
        self.now = now
        var effects: [ReplicaEffect] = []
        do {
            switch message {
            case .consensus(let message):
                if message.epoch > validators.epoch {
                    // The peer is in a later epoch: this node missed a hand-over.
                    requestSync(from: peer, &effects)
                    return effects
                }
                guard message.epoch == validators.epoch else { return effects }
                lastSender = peer
                try apply(consensus.handle(.message(message, from: peer)), &effects)
            case .transactions(let transactions):
                let verified = VerifiedTransaction.verifyAll(transactions, hasher: hasher, verifier: verifier).compactMap { try? $0.get() }
                return receive(gossiped: verified, now: now)
            case .syncRequest(let request):
                effects.append(.send(.syncResponse(try syncResponse(for: request)), to: peer))
            case .syncResponse(let response):
                try catchUp(with: response, from: peer, &effects)
            case .snapshotRequest(let request):
                // Height 0 says this node has no such state to give.
                let chunk = try snapshotChunk(for: request) ?? SnapshotChunk(height: 0, head: nil, entries: [], done: true)
                effects.append(.send(.snapshotChunk(chunk), to: peer))
            case .snapshotChunk:
                break  // only a node starting from a snapshot asks for one
            }
        } catch {
            fatal(error)
        }
        return effects
    }

    public func timerFired(_ timer: ReplicaTimer, now: UInt64) -> [ReplicaEffect] {
        defer { syncDeferredWrites() }
        self.now = now
        var effects: [ReplicaEffect] = []
        do {
            switch timer {
            case .round(let epoch, let round):
                guard epoch == validators.epoch else { break }
                try apply(consensus.handle(.timerFired(round: round)), &effects)
            case .propose:
                proposalTimerSet = false
                try proposeIfReady(&effects)
            case .gossip:
                gossipScheduled = false
                if !gossip.isEmpty {
                    for chunk in stride(from: 0, to: gossip.count, by: ProtocolLimits.gossipTransactionsMax) {
                        let end = min(chunk + ProtocolLimits.gossipTransactionsMax, gossip.count)
                        effects.append(.broadcast(.transactions(Array(gossip[chunk..<end]))))
                    }
                    gossip.removeAll(keepingCapacity: true)
                }
            case .sync:
                syncInFlight = false
            case .snapshot:
                break
            }
        } catch {
            fatal(error)
        }
        return effects
    }

    /// Ends a step. Its commits and safety data are written without a sync of their own;
    /// one sync here makes them all durable before the step's effects (votes, commit
    /// notices) leave the replica, which is what each promise needs.
    private func syncDeferredWrites() {
        do { try ledger.syncDeferredWrites() } catch { fatal(error) }
    }

    /// A storage failure leaves the node unable to keep its promises (a committed block
    /// is durable; safety data is durable before a vote). Going on could report what is
    /// not on disk or sign twice; stop, and let a restart resume from the disk.
    private func fatal(_ error: any Error) -> Never {
        logger.critical("node stopped: \(error)")
        fatalError("node stopped: \(error)")
    }

    // MARK: Admission

    private func admit(_ transaction: VerifiedTransaction) throws(TransactionError) {
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
        do {
            try mempool.admit(transaction, sender: sender, accountNonce: committedNonce(sender))
        } catch where error.code == .nonceTooLow {
            // A committed transaction's nonce is always used, so the transaction index is
            // read only for these, to say which it is: one read less per admission.
            guard (try? ledger.location(ofTransaction: transaction.id)) ?? nil == nil else {
                throw TransactionError(.duplicate, "transaction \(transaction.id) is already committed")
            }
            throw error
        }
    }

    func committedNonce(_ address: Address) -> UInt64 {
        (try? StateKeys.decodeU64(state.value(for: StateKeys.nonce(address)))) ?? 0
    }

    private func workChanged(_ effects: inout [ReplicaEffect]) throws {
        let work = !mempool.isEmpty
        if work != reportedWork {
            reportedWork = work
            try apply(consensus.handle(.pendingWork(work)), &effects)
        }
        if work, wantedProposal != nil { try proposeIfReady(&effects) }
    }

    // MARK: Consensus actions

    private func apply(_ actions: [ConsensusAction], _ effects: inout [ReplicaEffect]) throws {
        defer { keepCertifiedTip() }
        let epoch = validators.epoch
        // After a commit ends the epoch, the rest of the old consensus's actions are moot.
        for action in actions where validators.epoch == epoch {
            switch action {
            case .persist(let data):
                try ledger.persistSafety(data.canonicalBytes, deferSync: true)
            case .broadcast(let message):
                effects.append(.broadcast(.consensus(message)))
            case .send(let message, let validator):
                effects.append(.send(.consensus(message), to: validator))
            case .validate(let proposal):
                let valid = validate(proposal.block)
                if valid { certificates[proposal.justify.vote.blockHash] = proposal.justify }
                try apply(consensus.handle(.validated(blockHash: proposal.header.hash(using: hasher), valid: valid)), &effects)
            case .propose(let request):
                wantedProposal = request
                try proposeIfReady(&effects)
            case .commit(let blocks, let certificate):
                try commit(blocks, certificate: certificate, &effects)
            case .scheduleTimeout(let round, let milliseconds):
                effects.append(.timer(.round(epoch: validators.epoch, round: round), afterMilliseconds: milliseconds))
            case .fetch(_, let from):
                requestSync(from: from, &effects)
            case .refused(let error):
                logger.debug("consensus refused: \(error)")
            }
        }
    }

    private var keptCertificate: Hash?

    /// Keeps the highest certified block on disk, so a restart (even of a lone
    /// validator, which has no peer to fetch it from) can extend it.
    private func keepCertifiedTip() {
        let certificate = consensus.highestCertificate
        guard certificate.vote.blockHash != keptCertificate, let block = executed[certificate.vote.blockHash] else { return }
        keptCertificate = certificate.vote.blockHash
        do { try ledger.keepCertified(.init(block: block.block, certificate: certificate)) } catch { fatal(error) }
    }

    // MARK: Execution

    /// The state after `parent` (committed or executed): a store view with the
    /// uncommitted ancestors' writes laid over the disk.
    private func stateView(after parent: Hash) -> StateStore? {
        if parent == head.hash { return state }
        // A view depends only on the blocks between the head and `parent`, which a hash
        // fixes; proposing and executing one block ask for the same view more than once.
        if let cached = cachedView, cached.parent == parent, cached.head == head.hash { return cached.view }
        var layers: [WriteBatch] = []
        var cursor = parent
        while cursor != head.hash {
            guard let block = executed[cursor] else { return nil }
            layers.append(block.batch)
            cursor = block.block.header.parent
        }
        let view = StateStore(
            store: OverlayStore(base: store, layers: layers.reversed()), hasher: hasher, cache: nodeCache, versions: stateVersions)
        cachedView = (parent, head.hash, view)
        return view
    }

    private func header(of hash: Hash) -> BlockHeader? {
        hash == head.hash ? head.block.header : executed[hash]?.block.header
    }

    /// Executes `transactions` on `parent` and returns the block's execution with its
    /// roots; nil when the parent's state is not here.
    private func execute(_ transactions: [VerifiedTransaction], height: UInt64, on parent: Hash) throws -> (
        receipts: [Receipt], ids: [Hash], stateRoot: Hash, batch: WriteBatch, nextValidators: ValidatorSet?, cachedNodes: StateTree.CachedNodes
    )? {
        guard let view = stateView(after: parent), let parentHeader = header(of: parent) else { return nil }
        let execution = executor.execute(transactions, height: height, base: view)
        let nextValidators = try execution.changes.first { $0.key == ValidatorSet.stateKey }?.value.map { try ValidatorSet(canonicalBytes: $0) }
        // An archive node never prunes, so it lists nothing (switched to pruning later, it
        // prunes only what blocks listed from then on).
        let prepared = try view.prepare(
            root: parentHeader.stateRoot, changes: execution.changes, staleAt: pruner.keptHeights > 0 ? height : nil)
        return (execution.receipts, transactions.map(\.id), prepared.root, prepared.batch, nextValidators, prepared.nodes)
    }

    /// Checks a block by executing it: its transactions verify, and the roots and counts
    /// in its header are what this node computes.
    private func validate(_ block: Block) -> Bool {
        let header = block.header
        let hash = header.hash(using: hasher)
        if executed[hash] != nil { return true }
        guard let parent = self.header(of: header.parent), header.height == parent.height + 1,
            header.timestampMilliseconds >= parent.timestampMilliseconds, header.epoch == validators.epoch,
            header.chainId == genesis.chainId, block.transactions.count <= Int(genesis.consensus.blockTransactionsMax),
            block.transactions.isEmpty || !epochEnds(through: header.parent)
        else { return false }
        // Transactions this node has not seen are checked together, as one batch.
        var verified: [VerifiedTransaction?] = []
        verified.reserveCapacity(block.transactions.count)
        var unknown: [Int] = []
        for (index, transaction) in block.transactions.enumerated() {
            let id = transaction.body.id(using: hasher)
            if let known = mempool.transaction(id), known.transaction == transaction {
                verified.append(known)
            } else {
                verified.append(nil)
                unknown.append(index)
            }
        }
        let checked = VerifiedTransaction.verifyAll(unknown.map { block.transactions[$0] }, hasher: hasher, verifier: verifier)
        for (index, result) in zip(unknown, checked) {
            guard case .success(let transaction) = result else { return false }
            verified[index] = transaction
        }
        guard let result = try? execute(verified.map { $0! }, height: header.height, on: header.parent) else { return false }
        let receiptsRoot = hasher.merkleRoot(result.receipts.map { $0.hash(using: hasher) })
        guard header.transactionsRoot == hasher.merkleRoot(result.ids), header.receiptsRoot == receiptsRoot,
            header.stateRoot == result.stateRoot, header.transactionCount == UInt32(verified.count)
        else {
            state.tree.abandoned(result.cachedNodes)
            return false
        }
        executed[hash] = ExecutedBlock(
            block: block, hash: hash, transactionIds: result.ids, receipts: result.receipts, batch: result.batch,
            nextValidators: result.nextValidators, cachedNodes: result.cachedNodes)
        return true
    }

    /// Whether `hash` or an uncommitted ancestor of it is the last block of the epoch:
    /// then the blocks after it carry no transactions, so nothing executes under a set
    /// that is about to change.
    private func epochEnds(through hash: Hash) -> Bool {
        var cursor = hash
        while cursor != head.hash, let block = executed[cursor] {
            if block.nextValidators != nil { return true }
            cursor = block.block.header.parent
        }
        return false
    }

    // MARK: Proposing

    private func proposeIfReady(_ effects: inout [ReplicaEffect]) throws {
        guard let request = wantedProposal, let key = validatorKey, let me = consensus.me else { return }
        guard request.round == consensus.round else {
            wantedProposal = nil
            return
        }
        let interval = genesis.consensus.blockIntervalMilliseconds
        let early = now < lastProposalMilliseconds + interval
        // Too early for a part-full block and a timer is already set: reaping now would
        // find the same answer, at a cost that grows with the mempool.
        if early, proposalTimerSet, mempool.count < Int(genesis.consensus.blockTransactionsMax) { return }
        guard let view = stateView(after: request.parent.hash), let parentHeader = header(of: request.parent.hash) else { return }
        let height = request.parent.height + 1
        let picked =
            epochEnds(through: request.parent.hash)
            ? []
            : mempool.reap(
                countMax: Int(genesis.consensus.blockTransactionsMax), gasMax: genesis.consensus.blockGasMax,
                accountNonce: { address in (try? StateKeys.decodeU64(view.value(for: StateKeys.nonce(address)))) ?? 0 })
        // An empty block is worth proposing only to commit blocks that carry transactions.
        guard !picked.isEmpty || consensus.uncommittedTransactions else { return }
        if !picked.isEmpty, picked.count < Int(genesis.consensus.blockTransactionsMax), early {
            if !proposalTimerSet {
                proposalTimerSet = true
                effects.append(.timer(.propose, afterMilliseconds: lastProposalMilliseconds + interval - now))
            }
            return
        }
        guard let result = try execute(picked, height: height, on: request.parent.hash) else { return }
        let header = BlockHeader(
            chainId: genesis.chainId, epoch: validators.epoch, height: height, round: request.round, parent: request.parent.hash,
            proposer: me, timestampMilliseconds: max(now, parentHeader.timestampMilliseconds),
            transactionCount: UInt32(picked.count), transactionsRoot: hasher.merkleRoot(result.ids),
            receiptsRoot: hasher.merkleRoot(result.receipts.map { $0.hash(using: hasher) }), stateRoot: result.stateRoot)
        let block = Block(header: header, transactions: picked.map(\.transaction))
        let hash = header.hash(using: hasher)
        executed[hash] = ExecutedBlock(
            block: block, hash: hash, transactionIds: result.ids, receipts: result.receipts, batch: result.batch,
            nextValidators: result.nextValidators, cachedNodes: result.cachedNodes)
        let proposal = Proposal(
            block: block, justify: request.justify, timeout: request.timeout, signature: try key.sign(Proposal.signingMessage(blockHash: hash)))
        wantedProposal = nil
        lastProposalMilliseconds = now
        effects.append(.broadcast(.consensus(.proposal(proposal))))
        try apply(consensus.handle(.message(.proposal(proposal), from: nil)), &effects)
    }

    // MARK: Committing

    /// Commits `blocks` (lowest first), which `certificate` commits, through the headers
    /// of `bridge` after the last when the certificate commits a later block. Stops at
    /// the last block of an epoch and starts the next epoch from it; the blocks after it
    /// are empty, never committed, and the new epoch builds on it instead.
    /// Returns whether an epoch ended.
    @discardableResult
    private func commit(
        _ blocks: [BlockInfo], certificate: QuorumCertificate, bridge: [BlockHeader] = [], _ effects: inout [ReplicaEffect]
    ) throws -> Bool {
        for (position, info) in blocks.enumerated() {
            guard let block = executed[info.hash] else {
                preconditionFailure("consensus committed block \(info.hash), which this node never executed")
            }
            var change: EpochChange?
            if let next = block.nextValidators {
                let after = blocks[(position + 1)...].compactMap { executed[$0.hash]?.block.header } + bridge
                guard let view = stateView(after: block.hash) else { preconditionFailure("state of an executed block is missing") }
                change = EpochChange(
                    validators: next, lastHeader: block.block.header, evidence: CommitEvidence(certificate: certificate, headers: after),
                    validatorsProof: try view.tree.prove(ValidatorSet.stateKey, root: block.block.header.stateRoot))
            }
            try ledger.commit(
                block.block, certificate: certificate, receipts: block.receipts, transactionIds: block.transactionIds,
                genesisHash: nil, epochChange: change, batch: block.batch, deferSync: true)
            head = CommittedBlock(block: block.block, hash: block.hash, certificate: certificate)
            executed[info.hash] = nil
            state.tree.committed(block.cachedNodes)
            afterCommit(block, &effects)
            if let change {
                try beginEpoch(change, &effects)
                return true
            }
        }
        dropExecuted { $0.block.header.height <= head.block.header.height }
        certificates = certificates.filter { executed[$0.key] != nil }
        try workChanged(&effects)
        return false
    }

    /// The tree nodes the executed, uncommitted blocks put in the node cache.
    public var uncommittedCachedNodes: Set<StateNodeRef> {
        Set(executed.values.flatMap(\.cachedNodes.written))
    }

    /// Forgets the executed blocks that `dropped` picks: forks that lost, or blocks after
    /// the end of an epoch. None of them will commit.
    private func dropExecuted(where dropped: (ExecutedBlock) -> Bool) {
        for (hash, block) in executed where dropped(block) {
            state.tree.abandoned(block.cachedNodes)
            executed[hash] = nil
        }
    }

    /// Starts the consensus of the epoch `change` hands over to, rooted at the block it ends.
    private func beginEpoch(_ change: EpochChange, _ effects: inout [ReplicaEffect]) throws {
        epochChanges[change.lastHeader.height] = change
        validators = change.validators
        dropExecuted { _ in true }
        certificates = [:]
        wantedProposal = nil
        keptCertificate = nil
        reportedWork = false
        syncInFlight = false
        let safety = SafetyData(epoch: validators.epoch)
        try ledger.persistSafety(safety.canonicalBytes, deferSync: true)
        consensus = Self.makeConsensus(
            chainId: genesis.chainId, validators: validators, settings: settings, hasher: hasher, key: validatorKey, verifier: verifier,
            safety: safety, head: head)
        logger.info("epoch \(validators.epoch) begins after block \(head.block.header.height) with \(validators.validators.count) validators")
        effects.append(.epochChanged(membership()))
        try apply(consensus.start(), &effects)
        try workChanged(&effects)
    }

    /// The value of a raw state key at `height` (latest when nil) with what a light
    /// client needs to check it from the genesis alone.
    public func prove(_ key: [UInt8], height: UInt64?) throws(NodeError) -> StateProofBundle {
        let tip = head.block.header.height
        let target = height ?? tip
        guard target <= tip else {
            throw NodeError(.heightNotCommitted, "height \(target) is above the committed \(tip)")
        }
        do {
            guard let committed = try ledger.block(at: target) else { throw NodeError(.notFound, "no block at \(target)") }
            guard let certificate = committed.certificate else {
                throw NodeError(.noCertifiedBlock, "block \(target) is the genesis block, which has no certificate; prove at height ≥ 1")
            }
            try pruner.check(height: target)
            let proof: StateProof
            do { proof = try state.tree.prove(key, root: committed.block.header.stateRoot) } catch {
                guard target < pruner.oldestKept else { throw error }
                throw StateError(.pruned, "the state at height \(target) was pruned while it was read")
            }
            let epoch = committed.block.header.epoch
            return StateProofBundle(
                header: committed.block.header, evidence: try evidence(for: committed, certificate: certificate), proof: proof,
                epochs: epochHandOvers.filter { $0.validators.epoch <= epoch })
        } catch let error as NodeError {
            throw error
        } catch let error as StateError where error.code == .pruned {
            throw NodeError(.statePruned, error.message)
        } catch {
            throw NodeError(.storage, "\(error)")
        }
    }

    /// What commits a block: its certificate, through the committed blocks up to the one
    /// the certificate names; for the last block of an epoch, its hand-over evidence.
    private func evidence(for committed: CommittedBlock, certificate: QuorumCertificate) throws(StorageError) -> CommitEvidence {
        let height = committed.block.header.height
        if let change = epochChanges[height] { return change.evidence }
        var headers: [BlockHeader] = []
        var next = height + 1
        while next <= certificate.vote.commitHeight, headers.count < CommitEvidence.headersMax {
            guard let block = try ledger.block(at: next) else { break }
            headers.append(block.block.header)
            // The certificate may commit past the end of an epoch, through blocks that
            // were never committed; the hand-over kept their headers.
            if let change = epochChanges[next] {
                headers += change.evidence.headers
                break
            }
            next += 1
        }
        return CommitEvidence(certificate: certificate, headers: headers)
    }

    /// A page of the state at a committed height, for a peer starting from a snapshot;
    /// nil when this node cannot serve that height.
    func snapshotChunk(for request: SnapshotRequest) throws -> SnapshotChunk? {
        let height = request.height == 0 ? head.block.header.height : request.height
        guard height > 0, height <= head.block.header.height, height >= pruner.oldestKept, let committed = try ledger.block(at: height),
            let certificate = committed.certificate
        else { return nil }
        snapshotHold = (height, now + Self.snapshotHoldMilliseconds)
        var snapshotHead: SnapshotHead?
        if request.after == nil {
            var receipts: [Receipt] = []
            for transaction in committed.block.transactions {
                guard let (_, receipt) = try ledger.receipt(ofTransaction: transaction.body.id(using: hasher)) else { return nil }
                receipts.append(receipt)
            }
            snapshotHead = SnapshotHead(
                block: committed.block, receipts: receipts, evidence: try evidence(for: committed, certificate: certificate),
                epochs: epochHandOvers.filter { $0.lastHeader.height <= height })
        }
        let entries: [StateTree.Entry]
        do {
            entries = try state.tree.entries(
                root: committed.block.header.stateRoot, after: request.after, limit: SnapshotChunk.entriesMax,
                bytesMax: SnapshotChunk.bytesMax)
        } catch {
            // Pruned while it was read (the hold ran out between two requests).
            guard height < pruner.oldestKept else { throw error }
            return nil
        }
        let bytes = entries.reduce(0) { $0 + $1.key.count + $1.value.count }
        return SnapshotChunk(
            height: height, head: snapshotHead, entries: entries,
            done: entries.count < SnapshotChunk.entriesMax && bytes < SnapshotChunk.bytesMax)
    }

    /// The current validators with their recorded endpoints and their organisations' CAs.
    public func membership() -> EpochMembership {
        var addresses: [PublicKey: String] = [:]
        var authorities: [String: String] = [:]
        for validator in validators.validators {
            let key = StateKeys.peerAddress(Address(of: validator.publicKey, using: hasher))
            if let bytes = try? state.value(for: key) { addresses[validator.publicKey] = String(decoding: bytes, as: UTF8.self) }
            if let bytes = try? state.value(for: StateKeys.tlsAuthority(validator.organisation)) {
                authorities[validator.organisation] = String(decoding: bytes, as: UTF8.self)
            }
        }
        return EpochMembership(validators: validators, addresses: addresses, authorities: authorities)
    }

    private func afterCommit(_ block: ExecutedBlock, _ effects: inout [ReplicaEffect]) {
        let height = block.block.header.height
        let senders = Set(block.block.transactions.map { Address(of: $0.body.sender, using: hasher) })
        mempool.prune(senders: senders, nextHeight: height + 1, accountNonce: committedNonce)
        if height % 64 == 0 { mempool.pruneExpired(nextHeight: height + 1) }
        retainState()
        effects.append(.committed(CommitNotice(block: block.block, hash: block.hash, transactionIds: block.transactionIds, receipts: block.receipts)))
    }

    /// Lets the pruner go up to the oldest height kept after the head, short of a
    /// snapshot being served.
    private func retainState() {
        if let hold = snapshotHold, hold.untilMilliseconds < now { snapshotHold = nil }
        guard pruner.retain(committed: head.block.header.height, held: snapshotHold?.height), pruneInline else { return }
        do {
            while try pruner.prune() > 0 {}
        } catch { fatal(error) }
    }

    // MARK: Catch-up

    /// The per-block certificates of a catch-up response, each checked: a quorum of the
    /// epoch's validators, committing a block of the response at or above the one it is
    /// kept for, or else the evidence's own certificate. Nil if any fails.
    private func checkedCertificates(_ response: SyncResponse, evidence: CommitEvidence) -> [QuorumCertificate]? {
        var hashes: [UInt64: Hash] = [:]
        for block in response.committed { hashes[block.header.height] = block.header.hash(using: hasher) }
        var verified: Set<QuorumCertificate> = [evidence.certificate]
        for (block, certificate) in zip(response.committed, response.commitCertificates) {
            let vote = certificate.vote
            guard vote.commitHeight >= block.header.height else { return nil }
            if certificate == evidence.certificate { continue }
            guard hashes[vote.commitHeight] == vote.commitHash, vote.chainId == genesis.chainId else { return nil }
            if verified.contains(certificate) { continue }
            do { try certificate.verify(against: validators, verifier: verifier) } catch { return nil }
            verified.insert(certificate)
        }
        return response.commitCertificates
    }

    private func requestSync(from peer: UInt16?, _ effects: inout [ReplicaEffect]) {
        guard !syncInFlight else { return }
        let others = (0..<UInt16(validators.validators.count)).filter { $0 != consensus.me }
        guard !others.isEmpty else { return }
        syncRotation &+= 1
        let rotating = others[Int(syncRotation) % others.count]
        let preferred = [peer, lastSender].compactMap { $0 }.first { $0 != consensus.me && syncRotation % 2 == 1 }
        let target = preferred ?? rotating
        syncInFlight = true
        effects.append(
            .send(.syncRequest(SyncRequest(committedHeight: head.block.header.height, blocksMax: SyncResponse.blocksMax)), to: target))
        effects.append(.timer(.sync, afterMilliseconds: settings.syncRetryMilliseconds))
    }

    /// Committed blocks above the requester's height (ending with one whose stored
    /// certificate commits it), then the certified blocks above this node's tip.
    private func syncResponse(for request: SyncRequest) throws -> SyncResponse {
        let tip = head.block.header.height
        let limit = UInt64(min(request.blocksMax, SyncResponse.blocksMax))
        var committed: [Block] = []
        var stored: [QuorumCertificate] = []
        var evidence: CommitEvidence?
        var direct: (count: Int, certificate: QuorumCertificate)?
        var height = request.committedHeight + 1
        while height <= tip {
            guard let entry = try ledger.block(at: height), let certificate = entry.certificate else { break }
            committed.append(entry.block)
            stored.append(certificate)
            if let change = epochChanges[height] {
                // A response stays within one epoch: the requester checks it against the
                // set of its epoch, and learns the next set from this last block.
                evidence = change.evidence
                break
            }
            if certificate.vote.commitHash == entry.hash {
                direct = (committed.count, certificate)
                if UInt64(committed.count) >= limit { break }
            }
            height += 1
        }
        if evidence == nil {
            // Cut after the last block that a certificate commits directly.
            if let direct {
                committed = Array(committed.prefix(direct.count))
                stored = Array(stored.prefix(direct.count))
                evidence = CommitEvidence(certificate: direct.certificate)
            } else {
                committed = []
                stored = []
            }
        }
        var certified: [SyncResponse.Certified] = []
        if committed.last.map({ $0.header.height == tip }) ?? (request.committedHeight >= tip) {
            var cursor = consensus.highestCertificate
            certificates[cursor.vote.blockHash] = cursor
            var chain: [SyncResponse.Certified] = []
            while let block = executed[cursor.vote.blockHash], block.block.header.height > tip {
                chain.append(.init(block: block.block, certificate: cursor))
                guard let parentCertificate = certificates[block.block.header.parent] else { break }
                cursor = parentCertificate
            }
            certified = chain.reversed().filter { $0.block.header.height > request.committedHeight }
        }
        return SyncResponse(
            committed: committed, commitCertificates: stored, commitEvidence: evidence, certified: Array(certified.prefix(Int(limit))))
    }

    private func catchUp(with response: SyncResponse, from peer: UInt16, _ effects: inout [ReplicaEffect]) throws {
        syncInFlight = false
        if response.committed.isEmpty && response.certified.isEmpty {
            // That peer is no further along; the next request goes to another one.
            lastSender = nil
            return
        }
        if let evidence = response.commitEvidence, let last = response.committed.last {
            guard response.committed.first?.header.parent == head.hash,
                zip(response.committed, response.committed.dropFirst()).allSatisfy({ $1.header.parent == $0.header.hash(using: hasher) })
            else {
                logger.warning("catch-up from validator \(peer): blocks do not extend this node's chain")
                return
            }
            do { try evidence.verify(commits: last.header, validators: validators, hasher: hasher, verifier: verifier) } catch {
                logger.warning("catch-up from validator \(peer): \(error)")
                return
            }
            guard let certificates = checkedCertificates(response, evidence: evidence) else {
                logger.warning("catch-up from validator \(peer): a block's certificate does not commit it")
                return
            }
            for (position, block) in response.committed.enumerated() {
                let certificate = certificates[position]
                guard validate(block) else {
                    // A block that a quorum committed does not execute to its roots here:
                    // this node's software or disk disagrees with the chain. Stop rather
                    // than serve a different state.
                    preconditionFailure("committed block \(block.header.height) does not execute to its header's roots")
                }
                let hash = block.header.hash(using: hasher)
                let bridge = response.committed[(position + 1)...].map(\.header) + evidence.headers
                if try commit([BlockInfo(header: block.header, hash: hash)], certificate: certificate, bridge: bridge, &effects) {
                    // A new epoch: its consensus starts from this block; ask for more.
                    requestSync(from: peer, &effects)
                    return
                }
            }
            let certificate = evidence.certificate
            try apply(consensus.handle(.caughtUp(root: BlockInfo(header: head.block.header, hash: head.hash), certificate: certificate)), &effects)
        }
        for entry in response.certified {
            let hash = entry.block.header.hash(using: hasher)
            guard entry.certificate.vote.blockHash == hash else { return }
            guard validate(entry.block) else { return }
            certificates[hash] = entry.certificate
            try apply(consensus.handle(.certifiedBlock(BlockInfo(header: entry.block.header, hash: hash), certificate: entry.certificate)), &effects)
        }
        if response.committed.count == Int(SyncResponse.blocksMax) { requestSync(from: peer, &effects) }
    }
}
