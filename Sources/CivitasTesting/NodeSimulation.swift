import CivitasClient
import CivitasConsensus
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasNetwork
import CivitasNode
import CivitasState
import CivitasStorage
import Foundation
import HeapModule
import Logging

/// N real replicas (consensus, mempool, gossip, execution, state tree, storage on
/// `MemoryStore`, catch-up) on a simulated network and clock, with clients submitting
/// transactions, all from one seed. Faults happen until `faultsUntil`; after it every
/// node that is up must commit again and every client's transaction must commit.
///
/// Invariants are checked at every commit: one block per height across all nodes, each
/// transaction committed at one height only, heights in order on each node.
public final class NodeSimulation {
    public struct Settings: Sendable {
        public var validators = 4
        public var clients = 8
        public var loss = 0.0
        public var duplication = 0.0
        public var delayMilliseconds: ClosedRange<UInt64> = 1...10
        public var partitions = false
        public var crashes = false
        public var wipes = false
        public var faultsUntil: UInt64 = 10_000
        public var livenessBound: UInt64 = 60_000
        /// How long a client waits for its transaction before sending it again.
        public var clientRetryMilliseconds: UInt64 = 3_000
        public var clientThinkMilliseconds: UInt64 = 20
        /// Governance adds a validator of a new organisation (run by one more node, which
        /// starts as a follower), then removes validator 1, while the faults go on.
        public var reconfiguration = false
        /// A validator that lost its disk comes back from a peer's snapshot (ADR 0005)
        /// instead of replaying the chain.
        public var stateSync = false
        /// Each replica's `stateHeightsKept`, pruned in the step that commits: 0 keeps all.
        public var stateHeightsKept: UInt64 = 0
        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    final class SimulatedNode {
        let index: Int
        let key: PrivateKey
        var store: CrashableStore
        var replica: Replica?
        var sync: SnapshotSync?
        var up = true
        var incarnation = 0
        var lastCommit: UInt64 = 0
        var height: UInt64 = 0

        init(index: Int, key: PrivateKey) {
            self.index = index
            self.key = key
            store = CrashableStore()
        }
    }

    struct Client {
        var key: PrivateKey
        var builder: TransactionBuilder
        var nonce: UInt64 = 0
        var outstanding: VerifiedTransaction?
        var sentAt: UInt64 = 0
        var createdAt: UInt64 = 0
        var nextAt: UInt64 = 0
    }

    /// Governance transactions sent one after the other, each once the one before
    /// committed; each must succeed.
    struct GovernanceScript {
        var steps: [(admin: Int, call: Call)]
        var builders: [TransactionBuilder]
        var nonces: [UInt64]
        var outstanding: VerifiedTransaction?
        var sentAt: UInt64 = 0
        var startAt: UInt64
        var finished: Bool { steps.isEmpty && outstanding == nil }
    }

    enum Payload {
        /// `from` is the sending node; the receiver maps it to an index of its own set.
        case message(PeerMessage, from: Int)
        case timer(ReplicaTimer)
        case crash
        case restart(wipe: Bool)
    }

    public let seed: UInt64
    public let settings: Settings
    public let genesis: Genesis
    let hasher: ChainHasher
    let verifier = SharedVerifier()
    var random: SeededRandom
    public private(set) var now: UInt64 = 0
    var queue = EventQueue<Payload>()
    var nodes: [SimulatedNode] = []
    var clients: [Client] = []
    var governance: GovernanceScript?
    /// Transactions whose receipt reported failure.
    public private(set) var failedTransactions: Set<Hash> = []
    var partitions: [(start: UInt64, end: UInt64, side: Set<Int>)] = []
    /// The one block committed at each height, across all nodes.
    public private(set) var canonical: [UInt64: Hash] = [:]
    /// Height at which each transaction committed.
    public private(set) var committedTransactions: [Hash: UInt64] = [:]
    public private(set) var steps = 0
    let logger: Logger

    public init(seed: UInt64, settings: Settings) throws {
        guard !settings.reconfiguration || settings.validators >= 2 else {
            throw Failure(description: "reconfiguration removes validator 1: it needs at least 2 validators")
        }
        self.seed = seed
        self.settings = settings
        random = SeededRandom(seed: seed)
        var logger = Logger(label: "civitas.sim")
        logger.logLevel = .critical
        self.logger = logger
        let validatorKeys = try (0..<settings.validators).map { index in
            try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(index + 1), count: 32))
        }
        let adminKeys = try (0...settings.validators).map { index in
            try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(50 + index), count: 32))
        }
        let authorities = try (0...settings.validators).map { index in
            try TLSIdentity.makeAuthority(
                organisation: "org\(index)", now: Date(timeIntervalSince1970: 1_800_000_000),
                seed: [UInt8](repeating: UInt8(index + 1), count: 32)
            ).certificatePEM
        }
        let joinerKey = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 200, count: 32))
        let clientKeys = try (0..<settings.clients).map { index in
            try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(100 + index), count: 32))
        }
        genesis = Genesis(
            chainId: "sim", hashSuite: .sha256, signatureSchemes: [.ed25519],
            organisations: validatorKeys.enumerated().map { index, key in
                .init(
                    id: "org\(index)", name: "Organisation \(index)", admins: [adminKeys[index].publicKey],
                    members: index == 0 ? clientKeys.map(\.publicKey) : [],
                    validators: [.init(publicKey: key.publicKey, power: 1)], tlsAuthority: authorities[index])
            },
            allocations: clientKeys.map { .init(account: $0.publicKey, amount: 1_000_000) },
            consensus: .init(blockIntervalMilliseconds: 20, blockTransactionsMax: 500),
            timestampMilliseconds: 0)
        hasher = ChainHasher(.sha256)
        nodes = validatorKeys.enumerated().map { SimulatedNode(index: $0.offset, key: $0.element) }
        clients = clientKeys.map { Client(key: $0, builder: TransactionBuilder(chainId: "sim", hashSuite: .sha256, key: $0)) }
        if settings.reconfiguration {
            let newOrg = settings.validators
            nodes.append(SimulatedNode(index: newOrg, key: joinerKey))
            let add = ValidatorChange.add(
                .init(
                    validator: joinerKey.publicKey, power: 1, organisation: "org\(newOrg)", address: "127.0.0.1:9",
                    newOrganisation: .init(name: "Organisation \(newOrg)", admins: [adminKeys[newOrg].publicKey], tlsAuthority: authorities[newOrg])))
            let remove = ValidatorChange.remove(validatorKeys[1].publicKey)
            func steps(_ change: ValidatorChange, approvers: [Int]) -> [(admin: Int, call: Call)] {
                let id = GovernanceModule.proposalId(change, hasher: ChainHasher(.sha256))
                return [(0, Call(module: "governance", method: "propose", arguments: GovernanceModule.proposeArguments(change)))]
                    + approvers.map { ($0, Call(module: "governance", method: "approve", arguments: GovernanceModule.approveArguments(id: id))) }
            }
            // Org 0 proposes; the others approve up to the quorum of the organisations
            // (3 of 4, then 4 of 5). The new organisation approves the removal, and org 1
            // (which loses its validator but still votes on governance) only if needed.
            let addApprovers = Array(1..<GovernanceModule.quorum(organisations: settings.validators))
            let removeApprovers = Array(([newOrg] + Array(2..<newOrg) + [1]).prefix(GovernanceModule.quorum(organisations: newOrg + 1) - 1))
            governance = GovernanceScript(
                steps: steps(add, approvers: addApprovers) + steps(remove, approvers: removeApprovers),
                builders: adminKeys.map { TransactionBuilder(chainId: "sim", hashSuite: .sha256, key: $0) },
                nonces: Array(repeating: 0, count: adminKeys.count), startAt: settings.faultsUntil / 5)
        }
    }

    func fail(_ message: String) -> Failure {
        Failure(description: "seed \(seed) at \(now) ms: \(message)")
    }

    var settingsForReplica: ReplicaSettings {
        ReplicaSettings(roundTimeoutMilliseconds: 300, roundTimeoutMaxMilliseconds: 5_000, gossipMilliseconds: 5, syncRetryMilliseconds: 500)
    }

    func boot(_ node: SimulatedNode) throws {
        let replica = try Replica(
            genesis: genesis, store: node.store, validatorKey: node.key, stateHeightsKept: settings.stateHeightsKept,
            settings: settingsForReplica, verifier: verifier, logger: logger)
        node.replica = replica
        node.height = replica.head.block.header.height
        try perform(node, replica.start(now: now))
    }

    // MARK: Running

    public func run() throws {
        for node in nodes { try boot(node) }
        scheduleFaults()
        let end = settings.faultsUntil + settings.livenessBound
        var nextClientTick: UInt64 = 0
        while now <= end {
            if now >= nextClientTick {
                try driveClients()
                try driveGovernance()
                nextClientTick = now + 5
            }
            if now > settings.faultsUntil, livenessShown { return }
            guard let next = queue.next, next.time <= nextClientTick else {
                now = nextClientTick
                continue
            }
            _ = queue.popNext()
            now = next.time
            steps += 1
            guard steps < 3_000_000 else { throw fail("step bound reached") }
            let node = nodes[next.target]
            switch next.payload {
            case .crash:
                node.up = false
                node.incarnation += 1
                node.store = try node.store.afterCrash()
                node.replica = nil
                node.sync = nil
                continue
            case .restart(let wipe):
                guard !node.up else { continue }
                if wipe { node.store = CrashableStore() }
                node.up = true
                node.incarnation += 1
                if wipe && settings.stateSync {
                    let sync = try SnapshotSync(
                        genesis: genesis, store: node.store, validatorKey: node.key.publicKey, retryMilliseconds: 1_000, verifier: verifier,
                        logger: logger)
                    node.sync = sync
                    node.height = 0
                    try perform(node, sync.start(now: now))
                    snapshotsStarted += 1
                } else {
                    try boot(node)
                }
                continue
            default:
                break
            }
            if node.up, next.incarnation == node.incarnation, let sync = node.sync {
                try stepSync(node, sync, next.payload)
                continue
            }
            guard node.up, next.incarnation == node.incarnation, let replica = node.replica else { continue }
            switch next.payload {
            case .message(let message, let sender):
                // The network authenticates the sender's key; indexes are per epoch.
                guard let from = replica.validators.index(of: nodes[sender].key.publicKey) else { continue }
                try perform(node, replica.receive(message, from: from, now: now))
            case .timer(let timer):
                try perform(node, replica.timerFired(timer, now: now))
            case .crash, .restart:
                break
            }
        }
        let stuck = nodes.filter { $0.up && $0.lastCommit <= settings.faultsUntil }.map(\.index)
        let waiting = clients.indices.filter { clients[$0].outstanding != nil }
        throw fail("no liveness after the faults: nodes \(stuck) committed nothing since; clients \(waiting) still wait; heights \(nodes.map(\.height))")
    }

    public private(set) var snapshotsStarted = 0
    public private(set) var snapshotsLoaded = 0

    /// A node loading a snapshot takes only its pages and its timers; once the state is
    /// in, the node boots on it like any restart.
    func stepSync(_ node: SimulatedNode, _ sync: SnapshotSync, _ payload: Payload) throws {
        switch payload {
        case .message(let message, let sender):
            guard let from = sync.validators.index(of: nodes[sender].key.publicKey) else { return }
            try perform(node, sync.receive(message, from: from, now: now))
        case .timer(let timer):
            try perform(node, sync.timerFired(timer, now: now))
        default:
            return
        }
        if sync.finished {
            node.sync = nil
            if let height = sync.completedHeight {
                node.height = height
                snapshotsLoaded += 1
            }
            try boot(node)
        }
    }

    /// The validators of the latest epoch any node reached.
    public var latestValidators: ValidatorSet? {
        nodes.compactMap { $0.replica?.validators }.max { $0.epoch < $1.epoch }
    }

    /// Every validator that is up committed after the faults, no client waits, and the
    /// governance changes are done.
    var livenessShown: Bool {
        let members = latestValidators
        return nodes.allSatisfy { !$0.up || $0.lastCommit > settings.faultsUntil || members?.index(of: $0.key.publicKey) == nil }
            && (governance?.finished ?? true)
            && clients.allSatisfy { $0.outstanding == nil || $0.createdAt > settings.faultsUntil }
            && clients.contains { $0.nonce > 0 }
    }

    /// Each client keeps one transaction outstanding, sends it to a random node that is
    /// up, and sends it again elsewhere if it does not commit in time.
    func driveClients() throws {
        for index in clients.indices {
            var client = clients[index]
            if let outstanding = client.outstanding {
                if committedTransactions[outstanding.id] != nil {
                    client.outstanding = nil
                    client.nonce += 1
                    client.nextAt = now + settings.clientThinkMilliseconds
                } else if now >= client.sentAt + settings.clientRetryMilliseconds {
                    submit(outstanding, &client)
                }
            } else if now >= client.nextAt, now < settings.faultsUntil + settings.livenessBound / 2 {
                let value = Array("v\(client.nonce)".utf8)
                let call = Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array("k\(index)".utf8), value: value))
                let (signed, _) = try client.builder.sign(call: call, nonce: client.nonce, expiryHeight: 1_000_000, gasLimit: 100_000)
                let verified = try VerifiedTransaction.verify(signed, hasher: hasher, verifier: verifier)
                client.outstanding = verified
                client.createdAt = now
                submit(verified, &client)
            }
            clients[index] = client
        }
    }

    func driveGovernance() throws {
        guard var script = governance, now >= script.startAt else { return }
        defer { governance = script }
        if let outstanding = script.outstanding {
            if committedTransactions[outstanding.id] != nil {
                guard !failedTransactions.contains(outstanding.id) else {
                    throw fail("governance transaction \(outstanding.id) failed")
                }
                script.outstanding = nil
            } else if now >= script.sentAt + settings.clientRetryMilliseconds {
                script.sentAt = now
                send(outstanding)
            }
            return
        }
        guard !script.steps.isEmpty else { return }
        let (admin, call) = script.steps.removeFirst()
        let (signed, _) = try script.builders[admin].sign(call: call, nonce: script.nonces[admin], expiryHeight: 1_000_000, gasLimit: 1_000_000)
        script.nonces[admin] += 1
        let verified = try VerifiedTransaction.verify(signed, hasher: hasher, verifier: verifier)
        script.outstanding = verified
        script.sentAt = now
        send(verified)
    }

    func submit(_ transaction: VerifiedTransaction, _ client: inout Client) {
        client.sentAt = now
        send(transaction)
    }

    func send(_ transaction: VerifiedTransaction) {
        let live = nodes.filter { $0.up && $0.replica != nil }
        guard !live.isEmpty else { return }
        let node = live[Int(random.next() % UInt64(live.count))]
        do {
            try perform(node, node.replica!.submit(transaction, now: now))
        } catch {
            if trace { print("\(now) client submit to node \(node.index): \(error)") }
        }
    }

    // MARK: Effects

    let trace = ProcessInfo.processInfo.environment["CIVITAS_TRACE"] != nil

    func perform(_ node: SimulatedNode, _ effects: [ReplicaEffect]) throws {
        if node.replica != nil, let key = Ledger.promisedKeys.first(where: { !node.store.isSynced($0) }) {
            throw fail("n\(node.index): a step's effects leave before its write of \(key) is synced")
        }
        for effect in effects {
            if trace { print("\(now) n\(node.index): \(String(describing: effect).prefix(200))") }
            switch effect {
            case .send(let message, let to):
                guard let set = node.replica?.validators ?? node.sync?.validators, Int(to) < set.validators.count else { break }
                let key = set.validators[Int(to)].publicKey
                if let target = nodes.first(where: { $0.key.publicKey == key }) { deliver(message, from: node.index, to: target.index) }
            case .broadcast(let message):
                // To the validators of the sender's epoch, as the network connects them.
                guard let members = node.replica?.validators else { break }
                for target in nodes where target.index != node.index && members.index(of: target.key.publicKey) != nil {
                    deliver(message, from: node.index, to: target.index)
                }
            case .epochChanged:
                break
            case .timer(let timer, let milliseconds):
                schedule(node.index, after: milliseconds, .timer(timer))
            case .committed(let notice):
                try committed(node, notice)
            }
        }
    }

    func schedule(_ node: Int, after delay: UInt64, _ payload: Payload) {
        queue.schedule(at: now + delay, target: node, incarnation: nodes[node].incarnation, payload)
    }

    func deliver(_ message: PeerMessage, from sender: Int, to target: Int) {
        if now < settings.faultsUntil {
            for cut in partitions where cut.start <= now && now < cut.end && cut.side.contains(sender) != cut.side.contains(target) {
                return
            }
            if random.chance(settings.loss) { return }
        }
        // Every message crosses the wire encoding, as it would between processes.
        let decoded: PeerMessage
        do { decoded = try PeerMessage(canonicalBytes: message.canonicalBytes) } catch {
            preconditionFailure("seed \(seed): a peer message does not survive its encoding: \(error)")
        }
        let range = settings.delayMilliseconds
        let delay = range.lowerBound + random.next() % (range.upperBound - range.lowerBound + 1)
        schedule(target, after: delay, .message(decoded, from: sender))
        if now < settings.faultsUntil, random.chance(settings.duplication) {
            schedule(target, after: delay + random.next() % 50, .message(decoded, from: sender))
        }
    }

    func committed(_ node: SimulatedNode, _ notice: CommitNotice) throws {
        let height = notice.block.header.height
        guard height == node.height + 1 else {
            throw fail("node \(node.index) committed height \(height) after \(node.height)")
        }
        if let existing = canonical[height], existing != notice.hash {
            throw fail("SAFETY: node \(node.index) committed \(notice.hash) at height \(height); another node committed \(existing)")
        }
        canonical[height] = notice.hash
        for (id, receipt) in zip(notice.transactionIds, notice.receipts) where !receipt.status.isSuccess {
            failedTransactions.insert(id)
        }
        for id in notice.transactionIds {
            if let earlier = committedTransactions[id], earlier != height {
                throw fail("transaction \(id) committed at heights \(earlier) and \(height)")
            }
            committedTransactions[id] = height
        }
        node.height = height
        node.lastCommit = now
    }

    // MARK: Faults

    func scheduleFaults() {
        var time: UInt64 = 500
        while time < settings.faultsUntil {
            let choice = random.next() % 3
            if choice == 0, settings.partitions {
                let cut = 1 + Int(random.next() % UInt64(nodes.count - 1))
                let side = Set(Array(nodes.indices).shuffled(using: &random).prefix(cut))
                partitions.append((time, min(time + 1_000 + random.next() % 2_000, settings.faultsUntil), side))
            } else if choice == 1, settings.crashes || settings.wipes {
                let victim = Int(random.next() % UInt64(nodes.count))
                let wipe = settings.wipes && random.next() % 2 == 0
                queue.schedule(at: time, target: victim, incarnation: -1, .crash)
                let back = min(time + 300 + random.next() % 2_000, settings.faultsUntil)
                queue.schedule(at: back, target: victim, incarnation: -1, .restart(wipe: wipe))
            }
            time += 1_000 + random.next() % 2_000
        }
    }

    // MARK: Results

    /// The committed chain of every node agrees block by block up to its height, and
    /// nodes at the same height hold the same state root.
    public func checkLedgers() throws {
        for node in nodes where node.up {
            guard let replica = node.replica else { continue }
            let ledger = Ledger(store: node.store, hasher: hasher)
            // A node that started from a snapshot holds blocks from its base on.
            for height in stride(from: max(1, try ledger.baseHeight()), through: replica.head.block.header.height, by: 1) {
                guard let block = try ledger.block(at: height) else { throw fail("node \(node.index) lacks block \(height)") }
                guard canonical[height] == block.hash else {
                    throw fail("node \(node.index) holds \(block.hash) at \(height), canonical is \(String(describing: canonical[height]))")
                }
            }
        }
    }

    public var heights: [UInt64] { nodes.map(\.height) }

    /// Every tree node a running replica's cache holds is in its store or was written by a
    /// block it executed and has not committed: an abandoned proposal's nodes and pruned
    /// ones leave the cache.
    public func checkNodeCaches() throws {
        for node in nodes where node.up {
            guard let replica = node.replica else { continue }
            let uncommitted = replica.uncommittedCachedNodes
            for ref in replica.nodeCache.refs where !uncommitted.contains(ref) {
                guard try node.store.get(StateTree.nodeKey(ref)) != nil else {
                    throw fail("node \(node.index) caches tree node \(ref), neither stored nor of an uncommitted block")
                }
            }
        }
    }

    /// The running replica of node `index`, nil while it is down.
    public func replica(_ index: Int) -> Replica? { nodes[index].replica }

    /// Every committed height a running validator keeps proves a state value to a light
    /// client that trusts only the genesis: across batch commits and epoch ends. With
    /// pruning, the oldest kept state and the latest read whole, the heights below the
    /// oldest kept answer `node.state_pruned`, and a node that has committed enough
    /// heights has pruned.
    public func checkProofs() throws {
        let client = try LightClient(genesis: genesis)
        for node in nodes where node.up {
            guard let replica = node.replica, latestValidators?.index(of: node.key.publicKey) != nil else { continue }
            let base = try Ledger(store: node.store, hasher: hasher).baseHeight()
            let head = replica.head.block.header.height
            let oldest = replica.pruner.oldestKept
            let kept = settings.stateHeightsKept
            if kept > 0, head > kept, oldest < min(head - kept, replica.heldSnapshotHeight ?? .max) {
                throw fail(
                    "node \(node.index): at height \(head) keeping \(kept) heights (holding \(replica.heldSnapshotHeight.map(String.init) ?? "none")), "
                        + "the oldest kept is \(oldest)")
            }
            for height in stride(from: max(1, base), to: min(oldest, head + 1), by: 1) {
                do {
                    _ = try replica.prove(StateKeys.supply, height: height)
                    throw fail("node \(node.index): height \(height) proves below the oldest kept \(oldest)")
                } catch let error as NodeError where error.code == .statePruned {}
            }
            let tree = StateTree(store: node.store, hasher: hasher)
            for height in Set([max(oldest, base), head]) {
                guard let root = try Ledger(store: node.store, hasher: hasher).block(at: height)?.block.header.stateRoot else { continue }
                do { _ = try tree.entries(root: root, after: nil, limit: .max, bytesMax: .max) } catch {
                    throw fail("node \(node.index): the state at kept height \(height) does not read whole: \(error)")
                }
            }
            for height in stride(from: max(1, base, oldest), through: head, by: 1) {
                let bundle = try replica.prove(StateKeys.supply, height: height)
                let document = ProofDocument(
                    header: bundle.header, evidence: bundle.evidence, proof: bundle.proof, blockHash: bundle.header.hash(using: hasher),
                    epochs: bundle.epochs)
                do { _ = try client.verify(document) } catch {
                    throw fail("node \(node.index): proof at height \(height) (epoch \(bundle.header.epoch)) fails: \(error)")
                }
            }
        }
    }
}
