import CivitasConsensus
import CivitasTesting
import Foundation
import Testing

/// Seeded runs of the consensus cores under faults. A failure names its seed; replay one
/// with `CIVITAS_SEED=<seed> swift test --filter SimulationTests`.
@Suite struct SimulationTests {
    static func seeds(_ count: UInt64, salt: UInt64) -> [UInt64] {
        if let fixed = ProcessInfo.processInfo.environment["CIVITAS_SEED"].flatMap(UInt64.init) { return [fixed] }
        return (0..<count).map { $0 &* 0x9E37_79B9 &+ salt }
    }

    func run(_ settings: CoreSimulation.Settings, seeds: [UInt64], horizon: UInt64? = nil) throws -> [CoreSimulation] {
        var runs: [CoreSimulation] = []
        for seed in seeds {
            let simulation = try CoreSimulation(seed: seed, settings: settings)
            do { try simulation.run(until: horizon) } catch {
                Issue.record("\(error)")
                return runs
            }
            runs.append(simulation)
        }
        return runs
    }

    @Test func goodNetworkCommitsSteadily() throws {
        var settings = CoreSimulation.Settings()
        settings.faultsUntil = 0
        settings.stopOnceLive = false
        let runs = try run(settings, seeds: Self.seeds(20, salt: 1), horizon: 10_000)
        for simulation in runs {
            // With 1–20 ms delays a round takes a few tens of milliseconds.
            #expect(simulation.canonical.count > 100, "seed \(simulation.seed): \(simulation.canonical.count) heights")
            let heights = simulation.committedHeights
            #expect(heights.max()! - heights.min()! <= 3, "seed \(simulation.seed): \(heights)")
        }
    }

    @Test func lossDelayDuplicationAndReordering() throws {
        var settings = CoreSimulation.Settings()
        settings.loss = 0.2
        settings.duplication = 0.1
        settings.delayMilliseconds = 1...200
        _ = try run(settings, seeds: Self.seeds(60, salt: 2))
    }

    @Test func partitionsIncludingAsymmetricOnes() throws {
        var settings = CoreSimulation.Settings()
        settings.partitions = true
        settings.loss = 0.05
        _ = try run(settings, seeds: Self.seeds(60, salt: 3))
    }

    @Test func crashesAndRestartsWithAndWithoutTheirDisk() throws {
        var settings = CoreSimulation.Settings()
        settings.crashes = true
        settings.wipes = true
        settings.loss = 0.05
        _ = try run(settings, seeds: Self.seeds(60, salt: 4))
    }

    @Test func clockSkew() throws {
        var settings = CoreSimulation.Settings()
        settings.clockSkew = true
        settings.loss = 0.1
        _ = try run(settings, seeds: Self.seeds(40, salt: 5))
    }

    @Test func anEquivocatingValidator() throws {
        var settings = CoreSimulation.Settings()
        settings.byzantine = .equivocator
        settings.loss = 0.05
        settings.partitions = true
        _ = try run(settings, seeds: Self.seeds(60, salt: 6))
    }

    @Test func aSilentValidator() throws {
        var settings = CoreSimulation.Settings()
        settings.byzantine = .silent
        settings.loss = 0.05
        // Each time the silent validator leads, and each time it should gather the votes
        // for the next round, the round times out; the others still commit.
        let runs = try run(settings, seeds: Self.seeds(40, salt: 7))
        for simulation in runs { #expect(simulation.canonical.count >= 3, "seed \(simulation.seed)") }
    }

    @Test func twinsAValidatorKeyOnTwoNodes() throws {
        var settings = CoreSimulation.Settings()
        settings.twins = true
        settings.partitions = true
        settings.loss = 0.05
        _ = try run(settings, seeds: Self.seeds(60, salt: 8))
    }

    @Test func sevenValidatorsWithEveryFault() throws {
        var settings = CoreSimulation.Settings()
        settings.validators = 7
        settings.loss = 0.1
        settings.duplication = 0.05
        settings.partitions = true
        settings.crashes = true
        settings.clockSkew = true
        _ = try run(settings, seeds: Self.seeds(20, salt: 9))
    }

    /// The long-run mode that `civitas sim --blocks` uses for a million blocks, short:
    /// rotating faults, a calm phase after each in which every node commits, no stall.
    @Test func aLongRunWithRotatingFaultsNeverStalls() throws {
        for seed in Self.seeds(1, salt: 31) {
            let simulation = try CoreSimulation(seed: seed, settings: CoreSimulation.Settings())
            let report = try simulation.runLong(blocks: 1_000)
            #expect(report.blocks >= 1_000)
            #expect(report.faultPhases >= 6, "seed \(seed): every kind of fault came around")
        }
    }
}
