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

            With --blocks N, runs instead the consensus cores of --nodes validators (signatures and \
            certificates real, execution a stand-in) until N blocks are committed, under faults that \
            rotate phase by phase (a crash; a crash losing the disk, back from a peer's certified \
            snapshot; a partition; 10% loss), each followed by a calm phase in which every node must \
            commit; it fails on a divergence or a stall and reports how long it took.
            """)

    @Option(help: "Long run: commit this many blocks with rotating faults (consensus cores only).")
    var blocks: UInt64?

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
        if let blocks { return try runLong(blocks: blocks) }
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

    func runLong(blocks: UInt64) throws {
        var settings = CoreSimulation.Settings()
        settings.validators = nodes
        settings.faultsUntil = 0
        let simulation = try CoreSimulation(seed: firstSeed, settings: settings)
        let start = ContinuousClock.now
        print("seed \(firstSeed): \(nodes) validators, \(blocks) blocks, rotating faults")
        let report: CoreSimulation.LongRunReport
        do {
            report = try simulation.runLong(blocks: blocks, progressEvery: max(blocks / 10, 1)) { height, simulated in
                print("  height \(height): simulated \(simulated / 1_000) s, wall \(ContinuousClock.now - start)")
            }
        } catch {
            throw CommandError("\(error)")
        }
        let elapsed = ContinuousClock.now - start
        print(
            "seed \(firstSeed): \(report.blocks) blocks committed, no divergence, no stall; \(report.faultPhases) fault phases, "
                + "simulated \(report.simulatedMilliseconds / 1_000) s, longest gap between commits \(report.longestGapMilliseconds) ms, "
                + "\(report.steps) steps, took \(elapsed)")
    }
}
