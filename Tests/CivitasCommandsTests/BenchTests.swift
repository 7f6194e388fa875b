import ArgumentParser
import CivitasCore
import CivitasTesting
import Foundation
import Testing

@testable import CivitasCommands

@Suite struct BenchTests {
    /// Disk per transaction counts RocksDB's data, the write-ahead log included, and
    /// leaves out the text logs of the node and of RocksDB.
    @Test func diskBytesCountDataFilesAndTheWriteAheadLogNotTextLogs() throws {
        let directory = TemporaryDirectory("bench-disk")
        defer { directory.remove() }
        try FileSystem.createDirectory(directory.path + "/data")
        let files = ["node.log": 1, "data/LOG": 10, "data/LOG.old.17": 100, "data/000007.log": 1_000, "data/000008.sst": 10_000, "data/MANIFEST-000005": 100_000]
        for (name, size) in files {
            #expect(FileManager.default.createFile(atPath: directory.path + "/" + name, contents: Data(count: size)))
        }
        #expect(FileSystem.directoryBytes(directory.path) == 111_000)
    }

    @Test(arguments: SignatureScheme.allCases)
    func everySchemeVerifiesItsOwnSignaturesAtSomeRate(_ scheme: SignatureScheme) throws {
        #expect(try VerifyBench.rate(scheme, seconds: 0.05) > 0)
    }

    @Test func badOptionsAreRefusedBeforeAnythingRuns() throws {
        #expect(throws: (any Error).self) { try VerifyBench.parse(["--scheme", "rsa"]) }
        #expect(throws: (any Error).self) { try VerifyBench.parse(["--seconds", "0"]) }
        #expect(throws: (any Error).self) { try ContractBench.parse(["--block", "0"]) }
        #expect(try VerifyBench.parse(["--scheme", "sm2", "--validators", "1"]).validators == 1)
    }
}

@Suite struct LoadBenchOptionTests {
    @Test func loadOptionsAreCheckedBeforeAnythingRuns() throws {
        #expect(throws: (any Error).self) { try LoadBench.parse([]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--mode", "open"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--rate", "10"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--node", "http://127.0.0.1:1"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--node", "http://127.0.0.1:1"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--workload", "sql"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--batch", "0"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--settle-max", "-1"]) }
        #expect(throws: (any Error).self) { try LoadBench.parse(["--dir", "d", "--settle-max", "7201"]) }
        #expect(try LoadBench.parse(["--dir", "d", "--settle-max", "600"]).settleMax == 600)
        #expect(try LoadBench.parse(["--dir", "d"]).settleMax == 0)
        #expect(throws: (any Error).self) { try EtcdBench.parse([]) }
        let open = try LoadBench.parse(["--dir", "d", "--mode", "open", "--rate", "500", "--workload", "transfer", "--accounts", "10"])
        #expect(open.rate == 500 && open.workload == .transfer && open.accounts == 10)
    }

    @Test func endpointsMustBeLoopbackHTTPAddresses() throws {
        #expect(try LoopbackHTTP.Endpoint(url: "http://localhost:7700").host == "127.0.0.1")
        #expect(throws: (any Error).self) { try LoopbackHTTP.Endpoint(url: "https://127.0.0.1:7700") }
        #expect(throws: (any Error).self) { try LoopbackHTTP.Endpoint(url: "http://127.0.0.1") }
        #expect(throws: (any Error).self) { try LoopbackHTTP.Endpoint(url: "http://example.org:80") }
    }

    @Test func zipfianChoicesAreInRangeAndSkewed() {
        let chooser = ZipfianChooser(count: 1_000)
        var random = SeededRandom(seed: 3)
        var counts = [Int](repeating: 0, count: 1_000)
        for _ in 0..<20_000 { counts[chooser.record(&random)] += 1 }
        let sorted = counts.sorted(by: >)
        // Under θ = 0.99 the hottest record takes about a seventh of the choices; under a
        // uniform choice it would take about 0.1%.
        #expect(sorted[0] > 1_500)
        #expect(sorted[0] > 20 * sorted[500])
        var uniformRanks = SeededRandom(seed: 3)
        #expect((0..<1_000).allSatisfy { _ in (0..<1_000).contains(chooser.rank(&uniformRanks)) })
    }

    @Test func latencyPercentilesComeFromTheSortedSamples() throws {
        let summary = try #require(LatencySummary(milliseconds: (1...100).reversed().map(Double.init)))
        #expect(summary.p50 == 51 && summary.p95 == 96 && summary.p99 == 100 && summary.max == 100)
        #expect(summary.mean == 50.5)
        #expect(LatencySummary(milliseconds: []) == nil)
    }
}

@Suite struct OpenLoopPacingTests {
    /// A batch due 3.5 s ahead is sent then, not after one second's sleep (each worker
    /// once slept a second at most and then sent, so batches more than a second apart
    /// left early, in bursts).
    @Test func aWorkerWaitsForItsBatchTime() {
        var clock: Int64 = 0
        var sleeps: [Int64] = []
        let reached = LoadWorker.wait(
            until: 3_500_000_000, now: { clock }, stopping: { false },
            sleep: { nanoseconds in
                sleeps.append(nanoseconds)
                clock += nanoseconds
            })
        #expect(reached)
        #expect(clock == 3_500_000_000)
        #expect(sleeps == [1_000_000_000, 1_000_000_000, 1_000_000_000, 500_000_000])
    }

    @Test func aStoppingRunEndsTheWait() {
        var clock: Int64 = 0
        let reached = LoadWorker.wait(until: 10_000_000_000, now: { clock }, stopping: { clock >= 2_000_000_000 }, sleep: { clock += $0 })
        #expect(!reached)
        #expect(clock == 2_000_000_000)
    }
}
