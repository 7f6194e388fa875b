import ArgumentParser
import CivitasTesting
import Foundation

/// Long runs of the deterministic simulator, beyond what the test suite runs.
struct Sim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the deterministic network simulator over many seeds.",
        discussion: """
            Each seed runs real replicas (consensus, mempool, gossip, execution, state tree, storage, \
            catch-up) of --nodes validators on a simulated network and clock, with clients, and the \
            faults chosen here until --fault-seconds of simulated time; then every node must commit \
            again. A failure prints its seed; --first-seed SEED --seeds 1 replays it exactly.
            """)

    @Option(help: "Number of seeds to run.")
    var seeds = 10

    @Option(help: "First seed.")
    var firstSeed: UInt64 = 1

    @Option(help: "Validators (1 to 16).")
    var nodes = 4

    @Option(help: "Simulated seconds during which faults happen.")
    var faultSeconds = 10

    @Option(help: "Probability that a message is lost while faults happen.")
    var loss = 0.05

    @Flag(help: "Partition the network now and then.")
    var partitions = false

    @Flag(help: "Crash and restart validators, some with their data deleted.")
    var crashes = false

    @Flag(help: "Add a new organisation's validator by governance, then remove validator 1, during the faults.")
    var reconfiguration = false

    func validate() throws {
        guard (1...16).contains(nodes) else { throw ValidationError("--nodes must be 1 to 16") }
        guard (1...1_000_000).contains(seeds) else { throw ValidationError("--seeds must be 1 to 1000000") }
        guard (1...86_400).contains(faultSeconds) else { throw ValidationError("--fault-seconds must be 1 to 86400") }
        guard (0.0..<1.0).contains(loss) else { throw ValidationError("--loss must be in [0, 1)") }
        guard !reconfiguration || nodes >= 2 else { throw ValidationError("--reconfiguration needs at least 2 nodes") }
    }

    func run() async throws {
        var settings = NodeSimulation.Settings()
        settings.validators = nodes
        settings.loss = loss
        settings.partitions = partitions
        settings.crashes = crashes
        settings.wipes = crashes
        settings.reconfiguration = reconfiguration
        settings.faultsUntil = UInt64(faultSeconds) * 1_000
        let start = ContinuousClock.now
        var blocks = 0
        var transactions = 0
        for offset in 0..<UInt64(seeds) {
            let seed = firstSeed &+ offset
            let began = ContinuousClock.now
            let simulation = try NodeSimulation(seed: seed, settings: settings)
            do {
                try simulation.run()
                try simulation.checkLedgers()
                try simulation.checkProofs()
            } catch {
                throw CommandError("\(error)")
            }
            blocks += simulation.canonical.count
            transactions += simulation.committedTransactions.count
            print(
                "seed \(seed): ok, \(simulation.canonical.count) blocks, \(simulation.committedTransactions.count) transactions, simulated \(simulation.now) ms, heights \(simulation.heights), epoch \(simulation.latestValidators?.epoch ?? 0), took \(ContinuousClock.now - began)"
            )
        }
        let elapsed = ContinuousClock.now - start
        print("\(seeds) seeds passed: \(blocks) blocks, \(transactions) transactions in \(elapsed)")
    }
}
