import CivitasConsensus
import CivitasCore
import CivitasCrypto
import Foundation
import HeapModule

/// Runs the real `Consensus` state machines of N validators against a simulated network
/// and clock, all driven from one seed. Faults (loss, delay, duplication, partitions,
/// crashes with and without the disk, clock skew, Byzantine validators, twins) happen
/// until `faultsUntil`; after it the network is good and every honest node must commit
/// again within `livenessBound`. Invariants are checked at every commit.
public final class CoreSimulation {
    public enum Byzantine: Equatable, Sendable {
        /// Proposes two different valid blocks in its rounds and votes for every block.
        case equivocator
        /// Sends nothing at all.
        case silent
    }

    public struct Settings: Sendable {
        public var validators = 4
        public var loss = 0.0
        public var duplication = 0.0
        public var delayMilliseconds: ClosedRange<UInt64> = 1...20
        public var partitions = false
        public var crashes = false
        public var wipes = false
        public var clockSkew = false
        public var byzantine: Byzantine?
        /// Validator 0's key runs on two nodes.
        public var twins = false
        public var faultsUntil: UInt64 = 10_000
        /// End the run as soon as liveness after the faults is shown.
        public var stopOnceLive = true
        public var livenessBound: UInt64 = 60_000
        public var roundTimeoutMilliseconds: UInt64 = 300
        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    final class Instance {
        let validator: UInt16
        var core: Consensus
        var safety: SafetyData
        var committed: [BlockInfo] = []
        var rootCertificate: QuorumCertificate
        var up = true
        var incarnation = 0
        var skew: Double = 1
        var byzantine: Byzantine?

        init(validator: UInt16, core: Consensus, safety: SafetyData, rootCertificate: QuorumCertificate) {
            self.validator = validator
            self.core = core
            self.safety = safety
            self.rootCertificate = rootCertificate
        }

        var committedHeight: UInt64 { committed.last?.height ?? 0 }
    }

    enum Payload {
        case message(ConsensusMessage, from: UInt16)
        case timer(round: UInt64)
        case validated(Hash, Bool)
        case certified(BlockInfo, QuorumCertificate)
        case crash
        case restart(wipe: Bool)
    }

    public let seed: UInt64
    public let settings: Settings
    let chainId = "sim"
    let hasher = ChainHasher(.sha256)
    let verifier = SharedVerifier()
    var random: SeededRandom
    var now: UInt64 = 0
    var queue = EventQueue<Payload>()
    var keys: [PrivateKey] = []
    var validators: ValidatorSet
    var instances: [Instance] = []
    let genesis: BlockInfo
    var headers: [Hash: BlockHeader] = [:]
    var certificates: [Hash: QuorumCertificate] = [:]
    public private(set) var canonical: [UInt64: Hash] = [:]
    /// Intervals in which messages between `side` and the rest are lost (only those
    /// leaving `side` when `oneWay`).
    var partitions: [(start: UInt64, end: UInt64, side: Set<Int>, oneWay: Bool)] = []
    var lastProgress: [Int: UInt64] = [:]
    public private(set) var steps = 0

    /// Each node's committed height.
    public var committedHeights: [UInt64] { instances.map(\.committedHeight) }

    public init(seed: UInt64, settings: Settings) throws {
        self.seed = seed
        self.settings = settings
        random = SeededRandom(seed: seed)
        for index in 0..<settings.validators {
            keys.append(try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(index + 1), count: 32)))
        }
        validators = try ValidatorSet(
            epoch: 0, validators: keys.enumerated().map { Validator(organisation: "org\($0.offset)", publicKey: $0.element.publicKey, power: 1) })
        genesis = BlockInfo(hash: ChainHasher(.sha256).hash(Array("genesis \(seed)".utf8)), height: 0, round: 0, parent: .zero, transactionCount: 0)
        headers[genesis.hash] = BlockHeader(
            chainId: chainId, epoch: 0, height: 0, round: 0, parent: .zero, proposer: 0, timestampMilliseconds: 0,
            transactionCount: 0, transactionsRoot: .zero, receiptsRoot: .zero, stateRoot: .zero)
        var placements = (0..<settings.validators).map { UInt16($0) }
        if settings.twins { placements.append(0) }
        for (index, validator) in placements.enumerated() {
            let instance = makeInstance(validator: validator, safety: SafetyData(epoch: 0), root: genesis, certificate: nil)
            if let byzantine = settings.byzantine, validator == UInt16(settings.validators - 1) { instance.byzantine = byzantine }
            if settings.clockSkew { instance.skew = 0.5 + Double(random.next() % 100) / 100 }
            instances.append(instance)
            lastProgress[index] = 0
        }
    }

    func makeInstance(validator: UInt16, safety: SafetyData?, root: BlockInfo, certificate: QuorumCertificate?) -> Instance {
        let config = ConsensusConfig(chainId: chainId, validators: validators, roundTimeoutMilliseconds: settings.roundTimeoutMilliseconds)
        let rootCertificate = certificate ?? Consensus.rootCertificate(chainId: chainId, epoch: 0, root: root)
        let core = Consensus(
            config: config, hasher: hasher, key: keys[Int(validator)], verifier: verifier, safety: safety, root: root,
            rootCertificate: rootCertificate)
        return Instance(validator: validator, core: core, safety: safety ?? SafetyData(epoch: 0), rootCertificate: rootCertificate)
    }

    func fail(_ message: String) -> Failure {
        Failure(description: "seed \(seed) at \(now) ms: \(message)")
    }

    // MARK: Running

    /// Runs until `until` simulated milliseconds, then checks liveness.
    public func run(until end: UInt64? = nil) throws {
        let end = end ?? settings.faultsUntil + settings.livenessBound
        for index in instances.indices { try perform(index, instances[index].core.start()) }
        for index in instances.indices { try perform(index, instances[index].core.handle(.pendingWork(true))) }
        scheduleFaults(until: settings.faultsUntil)
        while let next = queue.popNext(), next.time <= end {
            now = next.time
            if settings.stopOnceLive && now > settings.faultsUntil && everyHonestNodeProgressed { break }
            steps += 1
            guard steps < 5_000_000 else { throw fail("step bound reached") }
            try process(next)
        }
        try checkLiveness()
    }

    private func process(_ next: EventQueue<Payload>.Event) throws {
        let instance = instances[next.target]
        switch next.payload {
        case .crash:
            instance.up = false
            instance.incarnation += 1
            return
        case .restart(let wipe):
            restart(next.target, wipe: wipe)
            return
        default:
            break
        }
        guard instance.up, next.incarnation == instance.incarnation else { return }
        let actions: [ConsensusAction]
        switch next.payload {
        case .message(let message, let from):
            if instance.byzantine == .equivocator, case .proposal(let proposal) = message { voteBlindly(next.target, proposal) }
            actions = instance.core.handle(.message(message, from: from))
        case .timer(let round):
            actions = instance.core.handle(.timerFired(round: round))
        case .validated(let hash, let valid):
            actions = instance.core.handle(.validated(blockHash: hash, valid: valid))
        case .certified(let block, let certificate):
            actions = instance.core.handle(.certifiedBlock(block, certificate: certificate))
        case .crash, .restart:
            return
        }
        try perform(next.target, actions)
    }

    // MARK: Long runs

    /// What a long run did.
    public struct LongRunReport: Sendable {
        public var blocks: UInt64
        public var simulatedMilliseconds: UInt64
        public var faultPhases: Int
        public var steps: Int
        public var longestGapMilliseconds: UInt64
    }

    /// Runs until `blocks` heights are committed, with faults that rotate phase by phase
    /// (a validator crashes; one crashes and loses its disk, coming back from a certified
    /// snapshot of a peer; a partition; message loss and duplication), each phase of faults
    /// followed by a calm one in which every node must commit. Fails on a divergence, on a
    /// calm phase without commits on every node, or when no node commits for
    /// `stallMilliseconds`. Memory stays bounded: history below every node's root is
    /// dropped as it goes. `progress(height, simulated ms)` is called every `progressEvery` blocks.
    public func runLong(
        blocks target: UInt64, phaseMilliseconds: UInt64 = 4_000, stallMilliseconds: UInt64 = 30_000, progressEvery: UInt64 = 100_000,
        progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws -> LongRunReport {
        longRun = true
        for index in instances.indices { try perform(index, instances[index].core.start()) }
        for index in instances.indices { try perform(index, instances[index].core.handle(.pendingWork(true))) }
        var phase = 0
        var phaseEnds = phaseMilliseconds
        var calmSince: UInt64? = 0
        var lastCommitAt: UInt64 = 0
        var longestGap: UInt64 = 0
        var lastHeight: UInt64 = 0
        var nextProgress = progressEvery
        var nextPrune: UInt64 = 10_000
        while lastHeight < target {
            guard let next = queue.popNext() else { throw fail("the event queue ran dry at height \(lastHeight)") }
            now = next.time
            if now >= phaseEnds {
                if let since = calmSince {
                    // A calm phase just ended: every node that is up must have committed in it.
                    for (index, instance) in instances.enumerated() where instance.up && (lastProgress[index] ?? 0) < since {
                        throw fail("node \(index) committed nothing in the calm phase from \(since) ms (height \(instance.committedHeight), round \(instance.core.round))")
                    }
                    calmSince = nil
                    startFaultPhase(phase, until: now + phaseMilliseconds)
                    phase += 1
                } else {
                    calmSince = now
                    longLoss = 0
                }
                phaseEnds = now + phaseMilliseconds
            }
            steps += 1
            try process(next)
            let height = UInt64(canonical.count) + prunedHeights
            if height > lastHeight {
                longestGap = max(longestGap, now - lastCommitAt)
                lastCommitAt = now
                lastHeight = height
            } else if now > lastCommitAt + stallMilliseconds {
                throw fail("STALL: no commit for \(now - lastCommitAt) ms at height \(lastHeight)")
            }
            if lastHeight >= nextPrune {
                prune()
                nextPrune = lastHeight + 10_000
            }
            if lastHeight >= nextProgress {
                progress(lastHeight, now)
                nextProgress += progressEvery
            }
        }
        return LongRunReport(blocks: lastHeight, simulatedMilliseconds: now, faultPhases: phase, steps: steps, longestGapMilliseconds: longestGap)
    }

    private var longRun = false
    private var longLoss = 0.0
    private var longFaultsUntil: UInt64 = 0
    private var prunedHeights: UInt64 = 0

    /// Phase k's fault, rotating over kinds and over validators.
    private func startFaultPhase(_ phase: Int, until end: UInt64) {
        longFaultsUntil = end
        let victim = (phase / 4) % instances.count
        switch phase % 4 {
        case 0, 1:
            queue.schedule(at: now, target: victim, incarnation: -1, .crash)
            queue.schedule(at: now + (end - now) / 2, target: victim, incarnation: -1, .restart(wipe: phase % 4 == 1))
        case 2:
            let shuffled = Array(instances.indices).shuffled(using: &random)
            let side = Set(shuffled.prefix(1 + Int(random.next() % UInt64(max(instances.count - 1, 1)))))
            partitions = [(now, end, side, random.next() % 2 == 0)]
        default:
            longLoss = 0.1
        }
    }

    /// Drops what no node can need any more: history below every node's committed root.
    private func prune() {
        let floor = instances.map { $0.committedHeight }.min() ?? 0
        guard floor > 16 else { return }
        let keep = floor - 16
        let before = canonical.count
        canonical = canonical.filter { $0.key >= keep }
        prunedHeights += UInt64(before - canonical.count)
        let dropped = headers.filter { $0.value.height < keep }.map(\.key)
        for hash in dropped {
            headers[hash] = nil
            certificates[hash] = nil
        }
        for instance in instances where instance.committed.count > 64 {
            instance.committed.removeFirst(instance.committed.count - 64)
        }
        partitions = partitions.filter { $0.end > now }
    }

    /// Liveness is shown once every honest node that is up has committed after the faults stopped.
    var everyHonestNodeProgressed: Bool {
        instances.indices.allSatisfy { index in
            instances[index].byzantine != nil || !instances[index].up || (lastProgress[index] ?? 0) > settings.faultsUntil
        }
    }

    func checkLiveness() throws {
        for (index, instance) in instances.enumerated() where instance.byzantine == nil && instance.up {
            let last = lastProgress[index] ?? 0
            let since = max(settings.faultsUntil, last)
            if last <= settings.faultsUntil {
                throw fail(
                    "node \(index) (validator \(instance.validator)) committed nothing after faults stopped at \(settings.faultsUntil) (last commit at \(since), height \(instance.committedHeight), round \(instance.core.round))")
            }
        }
    }

    func schedule(_ instance: Int, after delay: UInt64, _ payload: Payload) {
        let skewed = UInt64(Double(delay) * instances[instance].skew)
        queue.schedule(at: now + skewed, target: instance, incarnation: instances[instance].incarnation, payload)
    }

    var faultsActive: Bool { now < settings.faultsUntil || now < longFaultsUntil }

    func deliver(_ message: ConsensusMessage, from sender: Int, to target: Int) {
        guard instances[sender].byzantine != .silent else { return }
        if faultsActive {
            for cut in partitions where cut.start <= now && now < cut.end {
                let leaving = cut.side.contains(sender) && !cut.side.contains(target)
                let entering = !cut.side.contains(sender) && cut.side.contains(target)
                if leaving || (entering && !cut.oneWay) { return }
            }
            if random.chance(longRun ? longLoss : settings.loss) { return }
        }
        let range = settings.delayMilliseconds
        let delay = range.lowerBound + random.next() % (range.upperBound - range.lowerBound + 1)
        queue.schedule(at: now + delay, target: target, incarnation: instances[target].incarnation, .message(message, from: instances[sender].validator))
        if faultsActive, random.chance(longRun ? longLoss / 2 : settings.duplication) {
            queue.schedule(
                at: now + delay + random.next() % 50, target: target, incarnation: instances[target].incarnation,
                .message(message, from: instances[sender].validator))
        }
    }

    func targets(of validator: UInt16) -> [Int] {
        instances.indices.filter { instances[$0].validator == validator }
    }

    // MARK: Actions

    let trace = ProcessInfo.processInfo.environment["CIVITAS_TRACE"] != nil

    func perform(_ index: Int, _ actions: [ConsensusAction]) throws {
        let instance = instances[index]
        for action in actions {
            if trace { print("\(now) n\(index) r\(instance.core.round): \(String(describing: action).prefix(160))") }
            switch action {
            case .persist(let data):
                guard data.highestVotedRound >= instance.safety.highestVotedRound else {
                    throw fail("node \(index) persisted a lower voted round \(data.highestVotedRound) < \(instance.safety.highestVotedRound)")
                }
                instance.safety = data
            case .broadcast(let message):
                record(message)
                for target in instances.indices where target != index { deliver(message, from: index, to: target) }
            case .send(let message, let validator):
                record(message)
                for target in targets(of: validator) where target != index { deliver(message, from: index, to: target) }
            case .validate(let proposal):
                let valid = proposal.header.stateRoot == expectedRoot(proposal.header)
                schedule(index, after: 1, .validated(proposal.header.hash(using: hasher), valid))
            case .propose(let request):
                propose(index, request)
            case .commit(let blocks, let certificate):
                try commit(index, blocks, certificate)
            case .scheduleTimeout(let round, let milliseconds):
                schedule(index, after: milliseconds, .timer(round: round))
            case .fetch(let certificate, _):
                fetch(index, certificate)
            case .refused(let error):
                if error.code == .unsafe && instance.byzantine == nil && !settings.twins && !settings.wipes {
                    // Honest nodes only hit a safety refusal on their own, explained paths;
                    // keep them visible when debugging a seed.
                    _ = error
                }
            }
        }
    }

    func record(_ message: ConsensusMessage) {
        switch message {
        case .proposal(let proposal):
            certificates[proposal.justify.vote.blockHash] = proposal.justify
        case .timeout(let timeout):
            certificates[timeout.highestCertificate.vote.blockHash] = timeout.highestCertificate
        case .vote:
            break
        }
    }

    /// The sim's stand-in for execution: a block's state root is a hash of its parent's
    /// root and its own contents, so a block built on the wrong state fails validation.
    func expectedRoot(_ header: BlockHeader) -> Hash? {
        guard let parent = headers[header.parent] else { return nil }
        var bytes = parent.stateRoot.bytes
        var writer = CanonicalWriter()
        writer.u64(header.height)
        writer.u32(header.transactionCount)
        bytes += writer.bytes
        return hasher.hash(bytes)
    }

    func propose(_ index: Int, _ request: ProposalRequest) {
        let instance = instances[index]
        let variants = instance.byzantine == .equivocator ? 2 : 1
        var proposals: [Proposal] = []
        for variant in 0..<variants {
            var header = BlockHeader(
                chainId: chainId, epoch: 0, height: request.parent.height + 1, round: request.round, parent: request.parent.hash,
                proposer: instance.validator, timestampMilliseconds: now, transactionCount: UInt32(1 + variant + Int(random.next() % 3)),
                transactionsRoot: .zero, receiptsRoot: .zero, stateRoot: .zero)
            header.stateRoot = expectedRoot(header) ?? .zero
            let hash = header.hash(using: hasher)
            headers[hash] = header
            let signature = try! keys[Int(instance.validator)].sign(Proposal.signingMessage(blockHash: hash))
            proposals.append(Proposal(block: Block(header: header, transactions: []), justify: request.justify, timeout: request.timeout, signature: signature))
        }
        for proposal in proposals { record(.proposal(proposal)) }
        if proposals.count == 1 {
            for target in instances.indices where target != index { deliver(.proposal(proposals[0]), from: index, to: target) }
        } else {
            for target in instances.indices where target != index {
                deliver(.proposal(proposals[target % 2]), from: index, to: target)
            }
        }
        schedule(index, after: 0, .message(.proposal(proposals[0]), from: instance.validator))
    }

    /// An equivocator signs a vote for every proposal it sees, ignoring the safety rules.
    func voteBlindly(_ index: Int, _ proposal: Proposal) {
        let instance = instances[index]
        let header = proposal.header
        guard let parent = headers[header.parent] else { return }
        let hash = header.hash(using: hasher)
        let commits = parent.round + 1 == header.round
        let data = VoteData(
            chainId: chainId, epoch: 0, round: header.round, height: header.height, blockHash: hash,
            commitHeight: commits ? parent.height : 0, commitHash: commits ? header.parent : .zero)
        let vote = Vote(data: data, validator: instance.validator, signature: try! keys[Int(instance.validator)].sign(data.signingMessage))
        for target in instances.indices where target != index { deliver(.vote(vote), from: index, to: target) }
    }

    func fetch(_ index: Int, _ certificate: QuorumCertificate) {
        let instance = instances[index]
        var chain: [(BlockInfo, QuorumCertificate)] = []
        var cursor = certificate.vote.blockHash
        var cursorCertificate: QuorumCertificate? = certificate
        while let header = headers[cursor], header.height > instance.core.root.height, let qc = cursorCertificate {
            chain.append((BlockInfo(header: header, hash: cursor), qc))
            cursorCertificate = certificates[header.parent]
            cursor = header.parent
        }
        let delay = settings.delayMilliseconds.upperBound * 2
        for (block, qc) in chain.reversed() { schedule(index, after: delay, .certified(block, qc)) }
    }

    func commit(_ index: Int, _ blocks: [BlockInfo], _ certificate: QuorumCertificate) throws {
        let instance = instances[index]
        guard certificate.vote.commitHash == blocks.last?.hash else { throw fail("commit certificate names another block") }
        for block in blocks {
            if let previous = instance.committed.last {
                guard block.height == previous.height + 1, block.parent == previous.hash else {
                    throw fail("node \(index) committed height \(block.height) after \(previous.height) without linking")
                }
            } else if instance.committed.isEmpty && block.parent != genesis.hash && block.height == 1 {
                throw fail("node \(index) committed a first block that does not extend genesis")
            }
            if let existing = canonical[block.height], existing != block.hash {
                throw fail("SAFETY: node \(index) committed \(block.hash) at height \(block.height), another node committed \(existing)")
            }
            canonical[block.height] = block.hash
            instance.committed.append(block)
        }
        instance.rootCertificate = certificate
        lastProgress[index] = now
    }

    // MARK: Faults

    func scheduleFaults(until end: UInt64) {
        var time: UInt64 = 500
        while time < end {
            let choice = random.next() % 4
            if choice == 0, settings.partitions {
                let cut = 1 + Int(random.next() % UInt64(instances.count - 1))
                let shuffled = Array(instances.indices).shuffled(using: &random)
                let heal = min(time + 1_000 + random.next() % 3_000, end)
                partitions.append((time, heal, Set(shuffled.prefix(cut)), random.next() % 3 == 0))
            } else if choice == 1, settings.crashes || settings.wipes {
                let victim = Int(random.next() % UInt64(instances.count))
                let wipe = settings.wipes && random.next() % 2 == 0
                queue.schedule(at: time, target: victim, incarnation: -1, .crash)
                let back = min(time + 500 + random.next() % 3_000, end)
                queue.schedule(at: back, target: victim, incarnation: -1, .restart(wipe: wipe))
            }
            time += 1_000 + random.next() % 2_000
        }
    }

    func restart(_ index: Int, wipe: Bool) {
        let old = instances[index]
        guard !old.up else { return }
        let root: BlockInfo
        let safety: SafetyData?
        var certificate: QuorumCertificate?
        if wipe, longRun, let source = instances.filter({ $0.up && !$0.committed.isEmpty }).max(by: { $0.committedHeight < $1.committedHeight }) {
            // A node that lost its disk starts from a peer's certified snapshot (its last
            // committed block with the certificate that commits it), without safety data.
            safety = nil
            root = source.committed.last!
            certificate = source.rootCertificate
            old.committed = [root]
        } else if wipe {
            // A node that lost its disk starts without safety data and recovers by the
            // consensus's own rule (it abstains until it follows the live round).
            safety = nil
            root = genesis
            old.committed = []
        } else {
            safety = old.safety
            root = old.committed.last ?? genesis
            certificate = old.committed.isEmpty ? nil : old.rootCertificate
        }
        let fresh = makeInstance(validator: old.validator, safety: safety, root: root, certificate: certificate)
        old.core = fresh.core
        old.safety = fresh.safety
        old.up = true
        old.incarnation += 1
        var actions = old.core.start()
        actions += old.core.handle(.pendingWork(true))
        try? perform(index, actions)
        // A restarted node learns the current certificate from its peers' messages; the
        // sim hands it the highest one known, as catch-up would.
        if let best = certificates.values.max(by: { $0.vote.round < $1.vote.round }) {
            fetch(index, best)
        }
    }
}
