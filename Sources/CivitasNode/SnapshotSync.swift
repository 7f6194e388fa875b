import CivitasConsensus
import CivitasCore
import CivitasCrypto
import CivitasState
import CivitasStorage
import Logging

/// Starts a node from a peer's state at a committed height instead of replaying the
/// chain (ADR 0005), as a step function like `Replica`: messages and timers in, effects
/// out. The head (block, receipts, commit evidence, hand-overs) is checked from the
/// genesis alone; the entries are staged into the tree as they arrive and must rebuild
/// the block's state root. Only then are the block, the state and the hand-overs written,
/// durably, and the node can open its chain there. A peer that sends anything wrong is
/// dropped, what it sent discarded, and the next peer asked.
public final class SnapshotSync {
    public let genesis: Genesis
    public let hasher: ChainHasher
    /// The set the node knows before it has the snapshot (the genesis set); peers are
    /// named by their index in it.
    public let validators: ValidatorSet
    let store: any KeyValueStore
    let ledger: Ledger
    let state: StateStore
    let verifier: any SignatureVerifier
    let retryMilliseconds: UInt64
    let logger: Logger
    let peers: [UInt16]

    private var peerTurn = 0
    private var asked: UInt16?
    private var head: SnapshotHead?
    private var root = StateTree.emptyRoot
    private var after: Hash?
    private var requests = 0
    public private(set) var completedHeight: UInt64?
    /// Every peer said it has no state to give (a chain without blocks yet): the node
    /// starts from the genesis instead.
    public private(set) var nothingToLoad = false
    private var emptyAnswers: Set<UInt16> = []

    public var finished: Bool { completedHeight != nil || nothingToLoad }
    /// Snapshots refused so far, with the reason, for the log and the tests.
    public private(set) var refusals: [String] = []

    public init(
        genesis: Genesis, store: any KeyValueStore, validatorKey: PublicKey?, retryMilliseconds: UInt64 = 2_000,
        verifier: any SignatureVerifier = SignatureVerifiers(), logger: Logger = Logger(label: "civitas.snapshot")
    ) throws {
        try genesis.validate()
        self.genesis = genesis
        hasher = ChainHasher(genesis.hashSuite)
        let set = try genesis.validatorSet()
        validators = set
        self.store = store
        ledger = Ledger(store: store, hasher: hasher)
        state = StateStore(store: store, hasher: hasher)
        self.verifier = verifier
        self.retryMilliseconds = retryMilliseconds
        self.logger = logger
        peers = (0..<UInt16(set.validators.count)).filter { set.validators[Int($0)].publicKey != validatorKey }
        guard !peers.isEmpty else { throw NodeError(.storage, "a snapshot needs a peer to come from") }
        guard try ledger.committedHeight() == nil else {
            throw NodeError(.storage, "the data directory holds a chain already; a snapshot only fills an empty one")
        }
    }

    public func start(now: UInt64) throws -> [ReplicaEffect] {
        try clear()
        return ask(next: true)
    }

    public func receive(_ message: PeerMessage, from peer: UInt16, now: UInt64) throws -> [ReplicaEffect] {
        guard !finished, case .snapshotChunk(let chunk) = message, peer == asked else { return [] }
        if chunk.height == 0, head == nil {
            emptyAnswers.insert(peer)
            if emptyAnswers.count == peers.count {
                nothingToLoad = true
                logger.notice("no peer holds a committed block yet; starting from the genesis")
                return []
            }
            return ask(next: true)
        }
        do {
            try accept(chunk)
        } catch let refusal as SnapshotRefusal {
            refusals.append("validator \(peer): \(refusal.message)")
            logger.warning("snapshot from validator \(peer) refused: \(refusal.message)")
            try clear()
            return ask(next: true)
        }
        return completedHeight == nil ? ask(next: false) : []
    }

    /// The request went unanswered: the next peer is asked, from the start.
    public func timerFired(_ timer: ReplicaTimer, now: UInt64) throws -> [ReplicaEffect] {
        guard !finished, case .snapshot(let sequence) = timer, sequence == requests else { return [] }
        try clear()
        return ask(next: true)
    }

    private func ask(next: Bool) -> [ReplicaEffect] {
        if next {
            peerTurn += 1
            asked = peers[peerTurn % peers.count]
        }
        guard let asked else { return [] }
        requests += 1
        let request = SnapshotRequest(height: head?.block.header.height ?? 0, after: after)
        return [.send(.snapshotRequest(request), to: asked), .timer(.snapshot(requests), afterMilliseconds: retryMilliseconds)]
    }

    struct SnapshotRefusal: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    private func accept(_ chunk: SnapshotChunk) throws {
        if head == nil {
            guard let first = chunk.head, after == nil else { throw SnapshotRefusal("the first page carries no block") }
            try check(first)
            head = first
        }
        guard let head, chunk.height == head.block.header.height, chunk.head == nil || chunk.head == head else {
            throw SnapshotRefusal("a page of another height")
        }
        var changes: [StateTree.Change] = []
        changes.reserveCapacity(chunk.entries.count)
        for entry in chunk.entries {
            let keyHash = hasher.hash(.stateKey, entry.key)
            if let after, keyHash <= after { throw SnapshotRefusal("entries out of key-hash order") }
            after = keyHash
            changes.append(.init(key: entry.key, value: entry.value))
        }
        do {
            let (newRoot, batch) = try state.stage(root: root, changes: changes, staleAt: head.block.header.height)
            try store.write(batch, durable: false)
            root = newRoot
        } catch {
            throw NodeError(.storage, "staging a snapshot page: \(error)")
        }
        guard chunk.done else { return }
        guard root == head.block.header.stateRoot else {
            throw SnapshotRefusal("the entries rebuild state root \(root), block \(head.block.header.height) names \(head.block.header.stateRoot)")
        }
        let ids = head.block.transactions.map { $0.body.id(using: hasher) }
        try ledger.commitSnapshot(
            head.block, certificate: head.evidence.certificate, receipts: head.receipts, transactionIds: ids,
            genesisHash: genesis.hash(using: hasher), epochChanges: head.epochs)
        completedHeight = head.block.header.height
        logger.info("state at height \(head.block.header.height) loaded from a snapshot, root \(root)")
    }

    /// The block is the chain's: its hand-overs lead from the genesis set to its epoch,
    /// its evidence commits it under that epoch's set, and its transactions and receipts
    /// are the ones its header commits to.
    private func check(_ head: SnapshotHead) throws {
        let header = head.block.header
        guard header.chainId == genesis.chainId, header.height > 0 else { throw SnapshotRefusal("a block of another chain") }
        guard head.epochs.allSatisfy({ $0.lastHeader.height <= header.height }) else { throw SnapshotRefusal("a hand-over after the block") }
        let epochSet: ValidatorSet
        let used: Int
        do {
            (epochSet, used) = try EpochChange.validators(
                ofEpoch: header.epoch, from: validators, through: head.epochs, hasher: hasher, verifier: verifier)
        } catch {
            throw SnapshotRefusal("\(error)")
        }
        // The block may be the last of its epoch: then one more hand-over ends at it, and
        // the node keeps it, so it is checked too.
        var set = epochSet
        for change in head.epochs[used...] {
            do { set = try change.verify(from: set, hasher: hasher, verifier: verifier) } catch {
                throw SnapshotRefusal("hand-over to epoch \(change.validators.epoch): \(error)")
            }
        }
        if let last = head.epochs.last, used < head.epochs.count, last.lastHeader != header {
            throw SnapshotRefusal("the last hand-over ends at another block")
        }
        do { try head.evidence.verify(commits: header, validators: epochSet, hasher: hasher, verifier: verifier) } catch {
            throw SnapshotRefusal("commit evidence: \(error)")
        }
        let transactions = head.block.transactions
        guard transactions.count == head.receipts.count, transactions.count == Int(header.transactionCount) else {
            throw SnapshotRefusal("transactions and receipts do not match the header's count")
        }
        var ids: [Hash] = []
        for transaction in transactions {
            guard let verified = try? VerifiedTransaction.verify(transaction, hasher: hasher, verifier: verifier) else {
                throw SnapshotRefusal("a transaction of the block does not verify")
            }
            ids.append(verified.id)
        }
        guard hasher.merkleRoot(ids) == header.transactionsRoot,
            hasher.merkleRoot(head.receipts.map { $0.hash(using: hasher) }) == header.receiptsRoot
        else { throw SnapshotRefusal("transactions or receipts differ from the header's roots") }
    }

    /// Removes everything a refused or interrupted snapshot left in the store.
    private func clear() throws {
        head = nil
        root = StateTree.emptyRoot
        after = nil
        do {
            while true {
                let entries = try store.scan(prefix: [], start: nil, limit: 10_000)
                if entries.isEmpty { break }
                var batch = WriteBatch()
                for entry in entries { batch.delete(entry.key) }
                try store.write(batch, durable: false)
            }
        } catch {
            throw NodeError(.storage, "clearing the data directory for a snapshot: \(error)")
        }
    }
}
