import CivitasClient
import CivitasCore
import CivitasModules
import CivitasTesting
import Foundation
import Testing

/// The real replicas (consensus, mempool, gossip, execution, state tree, storage,
/// catch-up) of several validators under faults, from seeds. A failure names its seed;
/// replay it with `CIVITAS_SEED=<seed> swift test --filter NodeSimulationTests`.
@Suite struct NodeSimulationTests {
    static func seeds(_ count: UInt64, salt: UInt64) -> [UInt64] {
        if let fixed = ProcessInfo.processInfo.environment["CIVITAS_SEED"].flatMap(UInt64.init) { return [fixed] }
        return (0..<count).map { $0 &* 0x5851_F42D &+ salt }
    }

    /// Runs and checks a simulation per seed; `each` sees every one that passed.
    func run(_ settings: NodeSimulation.Settings, seeds: [UInt64], each: (NodeSimulation) -> Void = { _ in }) {
        for seed in seeds {
            do {
                let simulation = try NodeSimulation(seed: seed, settings: settings)
                try simulation.run()
                try simulation.checkLedgers()
                try simulation.checkNodeCaches()
                try simulation.checkProofs()
                #expect(!simulation.committedTransactions.isEmpty, "seed \(seed): nothing committed")
                if settings.reconfiguration {
                    // Added one validator, then removed validator 1: epoch 2, same count.
                    let last = simulation.latestValidators
                    #expect(last?.epoch == 2, "seed \(seed): ended in epoch \(String(describing: last?.epoch))")
                    #expect(last?.validators.map(\.organisation) == ["org0", "org2", "org3", "org4"], "seed \(seed)")
                }
                each(simulation)
            } catch {
                Issue.record("\(error)")
                return
            }
        }
    }

    @Test func aGoodNetworkCommitsEveryTransaction() {
        var settings = NodeSimulation.Settings()
        settings.faultsUntil = 2_000
        run(settings, seeds: Self.seeds(5, salt: 11))
    }

    @Test func lossDuplicationAndPartitions() {
        var settings = NodeSimulation.Settings()
        settings.loss = 0.1
        settings.duplication = 0.05
        settings.partitions = true
        run(settings, seeds: Self.seeds(10, salt: 12))
    }

    @Test func crashesAndRestartsWithAndWithoutTheirData() {
        var settings = NodeSimulation.Settings()
        settings.crashes = true
        settings.wipes = true
        settings.loss = 0.02
        run(settings, seeds: Self.seeds(10, salt: 13))
    }

    @Test func validatorAddedThenRemovedByGovernance() {
        var settings = NodeSimulation.Settings()
        settings.reconfiguration = true
        settings.faultsUntil = 6_000
        run(settings, seeds: Self.seeds(3, salt: 15))
    }

    @Test func validatorSetChangesUnderFaults() {
        var settings = NodeSimulation.Settings()
        settings.reconfiguration = true
        settings.faultsUntil = 12_000
        settings.loss = 0.05
        settings.partitions = true
        settings.crashes = true
        settings.wipes = true
        run(settings, seeds: Self.seeds(8, salt: 16))
    }

    /// Validators that lose their disk come back from a peer's snapshot, under faults
    /// (the peer may crash mid-transfer, pages may be lost): identical ledgers from their
    /// base on, every transaction committed, proofs valid.
    @Test func wipedValidatorsReturnFromSnapshots() throws {
        var settings = NodeSimulation.Settings()
        settings.stateSync = true
        settings.crashes = true
        settings.wipes = true
        settings.loss = 0.02
        settings.partitions = true
        var loaded = 0
        run(settings, seeds: Self.seeds(5, salt: 17)) { loaded += $0.snapshotsLoaded }
        #expect(loaded > 0, "no wiped validator came back from a snapshot")
    }

    /// Validators that keep only the last 16 heights' state prune as they commit, crash
    /// (losing what was not synced, pruning pages included) and come back from snapshots
    /// served by peers that go on pruning: identical ledgers, every transaction committed,
    /// every kept height proves and reads whole, every older one answers
    /// `node.state_pruned`.
    @Test func prunedStateUnderCrashesAndSnapshots() throws {
        var settings = NodeSimulation.Settings()
        settings.stateHeightsKept = 16
        settings.stateSync = true
        settings.crashes = true
        settings.wipes = true
        settings.loss = 0.02
        var pruned = 0
        var loaded = 0
        run(settings, seeds: Self.seeds(5, salt: 18)) { simulation in
            pruned += (0..<settings.validators).compactMap { simulation.replica($0)?.pruner.oldestKept }.filter { $0 > 0 }.count
            loaded += simulation.snapshotsLoaded
        }
        #expect(pruned > 0, "no validator pruned")
        #expect(loaded > 0, "no wiped validator came back from a snapshot")
    }

    @Test func oneValidatorAlone() {
        var settings = NodeSimulation.Settings()
        settings.validators = 1
        settings.faultsUntil = 1_000
        run(settings, seeds: Self.seeds(3, salt: 14))
    }

    /// Proofs from the end of a run with two validator-set changes: the light client
    /// takes them with their hand-overs and refuses them without, or with forged ones.
    @Test func lightClientsFollowHandOversAndRefuseForgedOnes() throws {
        var settings = NodeSimulation.Settings()
        settings.reconfiguration = true
        settings.faultsUntil = 3_000
        let simulation = try NodeSimulation(seed: 21, settings: settings)
        try simulation.run()
        let replica = try #require(simulation.replica(0))
        let bundle = try replica.prove(StateKeys.supply, height: nil)
        #expect(bundle.epochs.count == 2 && bundle.header.epoch == 2)
        let client = try LightClient(genesis: simulation.genesis)
        func verify(_ epochs: [EpochChange]) throws(ProofError) {
            _ = try client.verify(
                ProofDocument(
                    header: bundle.header, evidence: bundle.evidence, proof: bundle.proof,
                    blockHash: bundle.header.hash(using: replica.hasher), epochs: epochs))
        }
        try verify(bundle.epochs)
        #expect(throws: ProofError(.unknownEpoch, "")) { try verify([]) }
        #expect(throws: ProofError(.unknownEpoch, "")) { try verify(Array(bundle.epochs.prefix(1))) }
        #expect(throws: ProofError(.badHandOver, "")) { try verify(bundle.epochs.reversed()) }

        var forgedSet = bundle.epochs
        let first = forgedSet[0].validators
        forgedSet[0].validators = try ValidatorSet(
            epoch: first.epoch, validators: first.validators.map { Validator(organisation: $0.organisation, publicKey: $0.publicKey, power: $0.power + 1) })
        #expect(throws: ProofError(.badHandOver, "")) { try verify(forgedSet) }

        var forgedBlock = bundle.epochs
        forgedBlock[1].lastHeader.stateRoot = forgedBlock[0].lastHeader.stateRoot
        #expect(throws: ProofError(.badHandOver, "")) { try verify(forgedBlock) }
    }
}
