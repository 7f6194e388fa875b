import CivitasCore
import CivitasCrypto

/// What the consensus keeps of a block: enough to apply the voting and commit rules.
public struct BlockInfo: Hashable, Sendable {
    public var hash: Hash
    public var height: UInt64
    public var round: UInt64
    public var parent: Hash
    public var transactionCount: UInt32

    public init(hash: Hash, height: UInt64, round: UInt64, parent: Hash, transactionCount: UInt32) {
        self.hash = hash
        self.height = height
        self.round = round
        self.parent = parent
        self.transactionCount = transactionCount
    }

    public init(header: BlockHeader, hash: Hash) {
        self.init(hash: hash, height: header.height, round: header.round, parent: header.parent, transactionCount: header.transactionCount)
    }
}

public struct ConsensusConfig: Sendable, Equatable {
    public var chainId: String
    public var validators: ValidatorSet
    /// The first timeout of a round; doubled for each consecutive round that times out.
    public var roundTimeoutMilliseconds: UInt64
    public var roundTimeoutMaxMilliseconds: UInt64

    public init(chainId: String, validators: ValidatorSet, roundTimeoutMilliseconds: UInt64 = 1_000, roundTimeoutMaxMilliseconds: UInt64 = 30_000) {
        self.chainId = chainId
        self.validators = validators
        self.roundTimeoutMilliseconds = roundTimeoutMilliseconds
        self.roundTimeoutMaxMilliseconds = roundTimeoutMaxMilliseconds
    }

    public var epoch: UInt64 { validators.epoch }

    /// Round-robin over the validator set. Leaders rotate every round so a crashed or
    /// silent leader costs one timeout, not a stall.
    public func leader(of round: UInt64) -> UInt16 {
        UInt16(round % UInt64(validators.validators.count))
    }
}

/// What the node should build: a block at `round` on `parent`, justified by `justify`
/// (and `timeout` when the previous round timed out).
public struct ProposalRequest: Hashable, Sendable {
    public var round: UInt64
    public var parent: BlockInfo
    public var justify: QuorumCertificate
    public var timeout: TimeoutCertificate?
}

public struct ConsensusError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case wrongChain = "consensus.wrong_chain"
        case wrongEpoch = "consensus.wrong_epoch"
        case unknownValidator = "consensus.unknown_validator"
        case notLeader = "consensus.not_leader"
        case badSignature = "consensus.bad_signature"
        case badCertificate = "consensus.bad_certificate"
        case badTimeoutCertificate = "consensus.bad_timeout_certificate"
        case malformed = "consensus.malformed"
        case invalidBlock = "consensus.invalid_block"
        case equivocation = "consensus.equivocation"
        case unsafe = "consensus.unsafe"
    }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Everything the consensus asks of the node, in the order it must happen: a
/// `persist` precedes the message it protects.
public enum ConsensusAction: Hashable, Sendable {
    /// Make the safety data durable before performing any later action.
    case persist(SafetyData)
    case broadcast(ConsensusMessage)
    case send(ConsensusMessage, to: UInt16)
    /// Execute the proposal's block on its parent and answer `.validated`.
    case validate(Proposal)
    /// Build, sign and broadcast a proposal, and hand it back as a message.
    case propose(ProposalRequest)
    /// These blocks, lowest first, are final; `certificate` commits the last one.
    case commit([BlockInfo], certificate: QuorumCertificate)
    /// Deliver `.timerFired(round)` after this long, unless the round has moved on.
    case scheduleTimeout(round: UInt64, milliseconds: UInt64)
    /// A block certified by `certificate` is missing here: fetch it (and what it needs).
    case fetch(certificate: QuorumCertificate, from: UInt16?)
    case refused(ConsensusError)
}

public enum ConsensusEvent: Sendable {
    /// `from` is the sender as authenticated by the transport, nil for the node itself.
    case message(ConsensusMessage, from: UInt16?)
    case validated(blockHash: Hash, valid: Bool)
    case timerFired(round: UInt64)
    /// Whether the node holds transactions waiting for a block: rounds only time out
    /// while there is work, so an idle network stays quiet.
    case pendingWork(Bool)
    /// A block obtained by catch-up, executed, and certified by `certificate`.
    case certifiedBlock(BlockInfo, certificate: QuorumCertificate)
    /// The node committed blocks obtained by catch-up up to `root`, which
    /// `certificate` commits.
    case caughtUp(root: BlockInfo, certificate: QuorumCertificate)
}

/// The consensus of one node as a pure state machine: Jolteon (Gelashvili et al.,
/// FC 2022; DiemBFT v4), a chained two-phase HotStuff with a 2-chain commit rule and
/// timeout certificates. No I/O, no clock, no randomness: events in, actions out. See
/// docs/consensus.md for the rules and why they are safe and live.
public struct Consensus: Sendable {
    public let config: ConsensusConfig
    public let me: UInt16?
    private let key: PrivateKey?
    private let verifier: any SignatureVerifier
    private let hasher: ChainHasher

    public private(set) var safety: SafetyRules
    public private(set) var round: UInt64 = 1
    public private(set) var highestCertificate: QuorumCertificate
    public private(set) var highestTimeout: TimeoutCertificate?
    public private(set) var root: BlockInfo
    public private(set) var rootCertificate: QuorumCertificate

    private var blocks: [Hash: BlockInfo] = [:]
    private var pending: [Hash: Proposal] = [:]
    private var proposalsByRound: [UInt64: Hash] = [:]
    private var votes: [VoteData: VoteCollector] = [:]
    private var votedBy: [RoundSigner: VoteData] = [:]
    private var timeouts: [UInt64: TimeoutCollector] = [:]
    private var certified: [VoteData: QuorumCertificate] = [:]
    private var ownTimeout: TimeoutVote?
    private var pendingWork = false
    private var failedRounds: UInt64 = 0
    private var timerRound: UInt64 = 0
    private var requestedRound: UInt64 = 0
    private var waitingCommit: QuorumCertificate?
    private var catchingUp = false
    /// Set when the node starts without safety data: it may have voted before, in any
    /// round the network reached, and abstains until it follows the live round.
    public private(set) var recovering: Bool

    struct RoundSigner: Hashable {
        var round: UInt64
        var validator: UInt16
    }

    /// How far ahead of the current round votes and timeouts are kept, so a flood of
    /// messages for far-future rounds cannot grow memory.
    public static let roundWindow: UInt64 = 64

    /// - Parameters:
    ///   - root: the last committed block; `rootCertificate` commits it (for the
    ///     first block of an epoch, the synthetic certificate of `rootCertificate(for:)`).
    ///   - key: the validator's key; nil for a node that follows without voting.
    ///   - safety: the persisted safety data; nil when there is none (a new node, or one
    ///     that lost its disk). Such a validator may have voted before in any round up to
    ///     one past the highest certificate its peers hold, so it neither votes nor
    ///     proposes until it has heard from a peer, and then not through the round after
    ///     the one it is in (docs/consensus.md, "Losing the safety data").
    public init(
        config: ConsensusConfig, hasher: ChainHasher, key: PrivateKey?, verifier: any SignatureVerifier, safety: SafetyData?,
        root: BlockInfo, rootCertificate: QuorumCertificate
    ) {
        // A lone validator has no peers to learn from; its chain restarts with its disk.
        recovering = safety == nil && key != nil && config.validators.validators.count > 1
        self.config = config
        self.hasher = hasher
        self.key = key
        self.me = key.flatMap { config.validators.index(of: $0.publicKey) }
        self.verifier = verifier
        self.safety = SafetyRules(data: safety ?? SafetyData(epoch: config.validators.epoch))
        self.root = root
        self.rootCertificate = rootCertificate
        highestCertificate = rootCertificate
        certified[rootCertificate.vote] = rootCertificate
        // The round follows from certificates only; the safety data decides what this
        // validator may still sign, not which round the network is in.
        // An epoch starts at round 1 from its synthetic certificate of round 0.
        round = rootCertificate.vote.round == 0 ? 1 : rootCertificate.vote.round + 1
    }

    /// The certificate an epoch starts from: it certifies and commits the epoch's root
    /// block at round 0, with no signatures (every validator derives it on its own).
    public static func rootCertificate(chainId: String, epoch: UInt64, root: BlockInfo) -> QuorumCertificate {
        QuorumCertificate(
            vote: VoteData(
                chainId: chainId, epoch: epoch, round: 0, height: root.height, blockHash: root.hash,
                commitHeight: root.height, commitHash: root.hash),
            signatures: [])
    }

    public var isValidator: Bool { me != nil }
    public var knownBlocks: Int { blocks.count }

    /// Starts the node's part: a leader of the first round is asked to propose, and a
    /// timer is armed if there is work.
    public mutating func start() -> [ConsensusAction] {
        var actions: [ConsensusAction] = []
        if recovering { actions.append(.persist(safety.abstain(through: round))) }
        enter(round, &actions)
        return actions
    }

    public mutating func handle(_ event: ConsensusEvent) -> [ConsensusAction] {
        var actions: [ConsensusAction] = []
        dispatch(event, &actions)
        if recovering, case .message(_, let from?) = event, from != me {
            recovering = false
            actions.append(.persist(safety.abstain(through: round + 1)))
        }
        return actions
    }

    private mutating func dispatch(_ event: ConsensusEvent, _ actions: inout [ConsensusAction]) {
        switch event {
        case .message(.proposal(let proposal), let from):
            receive(proposal, from: from, &actions)
        case .message(.vote(let vote), _):
            receive(vote, &actions)
        case .message(.timeout(let timeout), _):
            receive(timeout, &actions)
        case .validated(let hash, let valid):
            validated(hash, valid: valid, &actions)
        case .timerFired(let firedRound):
            timerFired(firedRound, &actions)
        case .pendingWork(let work):
            pendingWork = work
            armTimerIfNeeded(&actions)
        case .certifiedBlock(let block, let certificate):
            guard check(certificate, &actions) else { break }
            guard certificate.vote.blockHash == block.hash, block.height > root.height else { break }
            // Rounds passed while catching up are history: propose only in live ones.
            catchingUp = true
            insert(block, &actions)
            process(certificate: certificate, timeout: nil, &actions)
            catchingUp = false
        case .caughtUp(let newRoot, let certificate):
            guard check(certificate, &actions) else { break }
            guard certificate.vote.commitHash == newRoot.hash, certificate.vote.commitHeight == newRoot.height,
                newRoot.height > root.height
            else { break }
            root = newRoot
            rootCertificate = certificate
            waitingCommit = nil
            prune()
            catchingUp = true
            process(certificate: certificate, timeout: nil, &actions)
            catchingUp = false
        }
    }

    // MARK: Proposals

    private mutating func receive(_ proposal: Proposal, from: UInt16?, _ actions: inout [ConsensusAction]) {
        let header = proposal.header
        guard header.chainId == config.chainId else {
            return actions.append(.refused(.init(.wrongChain, "proposal for chain \(header.chainId)")))
        }
        guard header.epoch == config.epoch else {
            return actions.append(.refused(.init(.wrongEpoch, "proposal of epoch \(header.epoch) in epoch \(config.epoch)")))
        }
        guard header.round > 0, header.proposer == config.leader(of: header.round) else {
            return actions.append(.refused(.init(.notLeader, "validator \(header.proposer) does not lead round \(header.round)")))
        }
        let hash = header.hash(using: hasher)
        let proposer = config.validators.validators[Int(header.proposer)]
        guard verifier.isValid(proposal.signature, of: Proposal.signingMessage(blockHash: hash), by: proposer.publicKey) else {
            return actions.append(.refused(.init(.badSignature, "proposal of round \(header.round) is not signed by its leader")))
        }
        let justify = proposal.justify
        guard justify.vote.blockHash == header.parent, header.height == justify.vote.height + 1,
            header.round > justify.vote.round
        else {
            return actions.append(.refused(.init(.malformed, "proposal of round \(header.round) does not extend its certificate")))
        }
        if let timeout = proposal.timeout {
            guard timeout.round + 1 == header.round else {
                return actions.append(.refused(.init(.malformed, "timeout certificate of round \(timeout.round) in round \(header.round)")))
            }
        } else if justify.vote.round + 1 != header.round {
            return actions.append(.refused(.init(.malformed, "round \(header.round) needs a certificate or timeout of the round before")))
        }
        guard check(justify, &actions) else { return }
        if let timeout = proposal.timeout, !check(timeout, &actions) { return }
        if let seen = proposalsByRound[header.round], seen != hash {
            return actions.append(.refused(.init(.equivocation, "validator \(header.proposer) proposed two blocks in round \(header.round)")))
        }

        process(certificate: justify, timeout: proposal.timeout, &actions)
        guard header.round == round else { return }  // an old round's proposal: nothing to vote
        proposalsByRound[header.round] = hash
        guard blocks[hash] == nil, pending[hash] == nil else { return }
        guard parentInfo(of: header.parent) != nil else {
            // Behind: the certified parent has not reached this node yet.
            return actions.append(.fetch(certificate: justify, from: from ?? header.proposer))
        }
        pending[hash] = proposal
        actions.append(.validate(proposal))
    }

    private mutating func validated(_ hash: Hash, valid: Bool, _ actions: inout [ConsensusAction]) {
        guard let proposal = pending.removeValue(forKey: hash) else { return }
        guard valid else {
            return actions.append(.refused(.init(.invalidBlock, "block \(hash) of round \(proposal.header.round) failed validation")))
        }
        let block = BlockInfo(header: proposal.header, hash: hash)
        insert(block, &actions)
        guard block.round == round, let me, let key, let parent = parentInfo(of: block.parent) else { return }
        let persisted: SafetyData
        do {
            persisted = try safety.vote(blockRound: block.round, certifiedRound: proposal.justify.vote.round, timeout: proposal.timeout)
        } catch {
            return actions.append(.refused(.init(.unsafe, error.message)))
        }
        let commits = parent.round + 1 == block.round
        let data = VoteData(
            chainId: config.chainId, epoch: config.epoch, round: block.round, height: block.height, blockHash: hash,
            commitHeight: commits ? parent.height : 0, commitHash: commits ? parent.hash : .zero)
        let vote = Vote(data: data, validator: me, signature: sign(key, data.signingMessage))
        actions.append(.persist(persisted))
        // Votes go to every validator, not only the next leader: each forms the
        // certificate itself, so commits are known one message delay after the votes,
        // and a crashed next leader does not lose the certificate (the round after it
        // extends it through the timeout certificate).
        actions.append(.broadcast(.vote(vote)))
        receive(vote, &actions)
    }

    // MARK: Votes

    private mutating func receive(_ vote: Vote, _ actions: inout [ConsensusAction]) {
        let data = vote.data
        guard data.chainId == config.chainId, data.epoch == config.epoch else {
            return actions.append(.refused(.init(.wrongEpoch, "vote of \(data.chainId) epoch \(data.epoch)")))
        }
        guard data.round + 1 >= round, data.round <= round + Self.roundWindow else { return }
        guard certified[data] == nil else { return }
        guard Int(vote.validator) < config.validators.validators.count else {
            return actions.append(.refused(.init(.unknownValidator, "vote from validator index \(vote.validator)")))
        }
        let key = RoundSigner(round: data.round, validator: vote.validator)
        if let earlier = votedBy[key] {
            if earlier != data {
                actions.append(.refused(.init(.equivocation, "validator \(vote.validator) voted for two blocks in round \(data.round)")))
            }
            return
        }
        guard verifier.isValid(vote.signature, of: data.signingMessage, by: config.validators.validators[Int(vote.validator)].publicKey) else {
            return actions.append(.refused(.init(.badSignature, "vote of validator \(vote.validator) in round \(data.round)")))
        }
        votedBy[key] = data
        var collector = votes[data] ?? VoteCollector(validators: config.validators, vote: data)
        let certificate = collector.add(validator: vote.validator, signature: vote.signature)
        votes[data] = collector
        if let certificate {
            votes[data] = nil
            certified[data] = certificate
            process(certificate: certificate, timeout: nil, &actions)
        }
    }

    // MARK: Timeouts

    private mutating func timerFired(_ firedRound: UInt64, _ actions: inout [ConsensusAction]) {
        guard firedRound == round, timerRound == round else { return }
        timerRound = 0
        sendTimeout(&actions)
        schedule(&actions)
    }

    private mutating func sendTimeout(_ actions: inout [ConsensusAction]) {
        guard let me, let key else { return }
        if let ownTimeout, ownTimeout.round == round {
            return actions.append(.broadcast(.timeout(ownTimeout)))  // retransmit the same statement
        }
        let persisted: SafetyData
        do {
            persisted = try safety.timeout(round: round, certifiedRound: highestCertificate.vote.round, timeout: highestTimeout)
        } catch {
            return actions.append(.refused(.init(.unsafe, error.message)))
        }
        let message = TimeoutVote.signingMessage(
            chainId: config.chainId, epoch: config.epoch, round: round, certifiedRound: highestCertificate.vote.round)
        let timeout = TimeoutVote(
            epoch: config.epoch, round: round, highestCertificate: highestCertificate,
            lastRoundTimeout: highestTimeout.flatMap { $0.round + 1 == round ? $0 : nil }, validator: me,
            signature: sign(key, message))
        ownTimeout = timeout
        actions.append(.persist(persisted))
        actions.append(.broadcast(.timeout(timeout)))
        receive(timeout, &actions)
    }

    private mutating func receive(_ timeout: TimeoutVote, _ actions: inout [ConsensusAction]) {
        guard timeout.epoch == config.epoch else {
            return actions.append(.refused(.init(.wrongEpoch, "timeout of epoch \(timeout.epoch)")))
        }
        guard Int(timeout.validator) < config.validators.validators.count else {
            return actions.append(.refused(.init(.unknownValidator, "timeout from validator index \(timeout.validator)")))
        }
        guard timeout.round >= round, timeout.round <= round + Self.roundWindow else { return }
        if let previous = timeout.lastRoundTimeout, previous.round + 1 == timeout.round, previous.round >= round {
            guard check(previous, &actions) else { return }
            process(certificate: previous.highestCertificate, timeout: previous, &actions)
        }
        if timeouts[timeout.round]?.contains(timeout.validator) == true { return }
        let certifiedRound = timeout.highestCertificate.vote.round
        guard certifiedRound < timeout.round else {
            return actions.append(.refused(.init(.malformed, "timeout of round \(timeout.round) reports certificate of round \(certifiedRound)")))
        }
        let message = TimeoutVote.signingMessage(
            chainId: config.chainId, epoch: config.epoch, round: timeout.round, certifiedRound: certifiedRound)
        guard verifier.isValid(timeout.signature, of: message, by: config.validators.validators[Int(timeout.validator)].publicKey) else {
            return actions.append(.refused(.init(.badSignature, "timeout of validator \(timeout.validator) in round \(timeout.round)")))
        }
        guard check(timeout.highestCertificate, &actions) else { return }
        process(certificate: timeout.highestCertificate, timeout: nil, &actions)
        guard timeout.round >= round else { return }

        var collector = timeouts[timeout.round] ?? TimeoutCollector(validators: config.validators, round: timeout.round)
        collector.add(timeout)
        timeouts[timeout.round] = collector
        if let certificate = collector.certificate(epoch: config.epoch) {
            highestTimeout = certificate
            process(certificate: certificate.highestCertificate, timeout: certificate, &actions)
        } else if timeout.round == round, collector.power > config.validators.totalPower / 3, ownTimeout?.round != round {
            // More than a third timed out: at least one honest validator did, so this
            // round cannot make progress; join rather than wait for the local timer.
            sendTimeout(&actions)
        }
    }

    // MARK: Certificates, commits and rounds

    /// Checks a certificate once; a certificate already seen for the same vote is known good.
    private mutating func check(_ certificate: QuorumCertificate, _ actions: inout [ConsensusAction]) -> Bool {
        if certified[certificate.vote] != nil { return true }
        guard certificate.vote.chainId == config.chainId, certificate.vote.epoch == config.epoch, certificate.vote.round > 0 else {
            actions.append(.refused(.init(.badCertificate, "certificate of round \(certificate.vote.round), epoch \(certificate.vote.epoch)")))
            return false
        }
        do { try certificate.verify(against: config.validators, verifier: verifier) } catch {
            actions.append(.refused(.init(.badCertificate, error.description)))
            return false
        }
        certified[certificate.vote] = certificate
        return true
    }

    private mutating func check(_ timeout: TimeoutCertificate, _ actions: inout [ConsensusAction]) -> Bool {
        if highestTimeout == timeout { return true }
        func refuse(_ message: String) -> Bool {
            actions.append(.refused(.init(.badTimeoutCertificate, message)))
            return false
        }
        guard timeout.epoch == config.epoch else { return refuse("timeout certificate of epoch \(timeout.epoch)") }
        var power: UInt64 = 0
        var previous = -1
        for entry in timeout.entries {
            let index = Int(entry.validator)
            guard index > previous, index < config.validators.validators.count else {
                return refuse("validator index \(index) repeated, unordered or unknown")
            }
            previous = index
            guard entry.certifiedRound < timeout.round else { return refuse("entry reports a certificate of a later round") }
            let message = TimeoutVote.signingMessage(
                chainId: config.chainId, epoch: config.epoch, round: timeout.round, certifiedRound: entry.certifiedRound)
            guard verifier.isValid(entry.signature, of: message, by: config.validators.validators[index].publicKey) else {
                return refuse("signature of validator \(index) is invalid")
            }
            power += config.validators.validators[index].power
        }
        guard power >= config.validators.quorumPower else { return refuse("signers hold \(power), quorum is \(config.validators.quorumPower)") }
        guard timeout.highestCertificate.vote.round == timeout.highestCertifiedRound else {
            return refuse("its certificate is not the highest its entries report")
        }
        return check(timeout.highestCertificate, &actions)
    }

    private mutating func process(certificate: QuorumCertificate, timeout: TimeoutCertificate?, _ actions: inout [ConsensusAction]) {
        if certificate.vote.round > highestCertificate.vote.round { highestCertificate = certificate }
        if let timeout, timeout.round > (highestTimeout?.round ?? 0) { highestTimeout = timeout }
        if certificate.vote.commits, certificate.vote.commitHeight > root.height { commit(certificate, &actions) }

        let next = max(certificate.vote.round, timeout?.round ?? 0) + 1
        guard next > round else { return }
        let byTimeout = (timeout?.round ?? 0) >= certificate.vote.round && timeout != nil
        failedRounds = byTimeout ? failedRounds + 1 : 0
        enter(next, &actions)
    }

    private mutating func commit(_ certificate: QuorumCertificate, _ actions: inout [ConsensusAction]) {
        var chain: [BlockInfo] = []
        var cursor = certificate.vote.commitHash
        while cursor != root.hash {
            guard let block = blocks[cursor], block.height > root.height else {
                waitingCommit = certificate
                return actions.append(.fetch(certificate: certificate, from: nil))
            }
            chain.append(block)
            cursor = block.parent
        }
        chain.reverse()
        guard let top = chain.last else { return }
        waitingCommit = nil
        root = top
        rootCertificate = certificate
        actions.append(.commit(chain, certificate: certificate))
        prune()
    }

    private mutating func prune() {
        blocks = blocks.filter { $0.value.height > root.height }
        pending = pending.filter { $0.value.header.height > root.height }
        proposalsByRound = proposalsByRound.filter { $0.key + Self.roundWindow > round }
        certified = certified.filter { $0.value.vote.round >= root.round || $0.value == highestCertificate }
    }

    private mutating func enter(_ newRound: UInt64, _ actions: inout [ConsensusAction]) {
        round = newRound
        votes = votes.filter { $0.key.round + 1 >= newRound }
        votedBy = votedBy.filter { $0.key.round + 1 >= newRound }
        timeouts = timeouts.filter { $0.key >= newRound }
        timerRound = 0
        armTimerIfNeeded(&actions)
        requestProposal(&actions)
    }

    private mutating func requestProposal(_ actions: inout [ConsensusAction]) {
        guard let me, config.leader(of: round) == me, requestedRound < round, !catchingUp, safety.mayPropose(round: round) else { return }
        guard let parent = parentInfo(of: highestCertificate.vote.blockHash) else {
            return actions.append(.fetch(certificate: highestCertificate, from: nil))
        }
        requestedRound = round
        let timeout = highestTimeout.flatMap { $0.round + 1 == round ? $0 : nil }
        actions.append(.propose(ProposalRequest(round: round, parent: parent, justify: highestCertificate, timeout: timeout)))
    }

    private mutating func insert(_ block: BlockInfo, _ actions: inout [ConsensusAction]) {
        guard block.height > root.height, blocks[block.hash] == nil else { return }
        blocks[block.hash] = block
        if let waitingCommit { commit(waitingCommit, &actions) }
        requestProposal(&actions)
        armTimerIfNeeded(&actions)
    }

    /// Rounds time out only while something waits: transactions here, or blocks that
    /// carry transactions and are not committed yet.
    private var hasWork: Bool {
        pendingWork || blocks.values.contains { $0.transactionCount > 0 } || !pending.isEmpty
    }

    /// Whether the leader should propose even without new transactions: a block that
    /// carries transactions commits only once a child of it is certified.
    public var uncommittedTransactions: Bool { blocks.values.contains { $0.transactionCount > 0 } }

    private mutating func armTimerIfNeeded(_ actions: inout [ConsensusAction]) {
        guard timerRound != round, hasWork else { return }
        schedule(&actions)
    }

    private mutating func schedule(_ actions: inout [ConsensusAction]) {
        timerRound = round
        let factor = UInt64(1) << min(failedRounds, 16)
        let milliseconds = min(config.roundTimeoutMilliseconds.multipliedReportingOverflow(by: factor).partialValue, config.roundTimeoutMaxMilliseconds)
        actions.append(.scheduleTimeout(round: round, milliseconds: max(milliseconds, 1)))
    }

    private func parentInfo(of hash: Hash) -> BlockInfo? {
        hash == root.hash ? root : blocks[hash]
    }

    private func sign(_ key: PrivateKey, _ message: [UInt8]) -> Signature {
        do { return try key.sign(message) } catch {
            // Signing with the node's own well-formed key cannot fail short of a broken library.
            preconditionFailure("signing failed: \(error)")
        }
    }
}

/// Timeouts for one round until they hold a quorum of power.
struct TimeoutCollector: Sendable {
    let validators: ValidatorSet
    let round: UInt64
    private var entries: [UInt16: TimeoutCertificate.Entry] = [:]
    private var best: QuorumCertificate?
    private(set) var power: UInt64 = 0

    init(validators: ValidatorSet, round: UInt64) {
        self.validators = validators
        self.round = round
    }

    func contains(_ validator: UInt16) -> Bool { entries[validator] != nil }

    mutating func add(_ timeout: TimeoutVote) {
        guard entries[timeout.validator] == nil else { return }
        entries[timeout.validator] = .init(
            validator: timeout.validator, certifiedRound: timeout.highestCertificate.vote.round, signature: timeout.signature)
        power += validators.validators[Int(timeout.validator)].power
        if timeout.highestCertificate.vote.round > (best?.vote.round ?? 0) || best == nil { best = timeout.highestCertificate }
    }

    func certificate(epoch: UInt64) -> TimeoutCertificate? {
        guard power >= validators.quorumPower, let best else { return nil }
        return TimeoutCertificate(epoch: epoch, round: round, entries: Array(entries.values), highestCertificate: best)
    }
}
