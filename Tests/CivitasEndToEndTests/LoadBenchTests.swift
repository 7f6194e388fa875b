import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasTesting
@testable import CivitasCommands
import Foundation
import Testing

/// `civitas bench` against real node processes: it creates a local network with its
/// sender keys, loads it, and reports figures that agree with each other.
@Suite(.serialized) struct LoadBenchTests {
    let support = CrashRecoveryTests()

    struct Report: Decodable {
        struct Latency: Decodable {
            var p50: Double
            var p99: Double
        }
        struct Node: Decodable {
            var cpuPercent: Double
            var peakRssMib: Double
        }
        var committedTps: Double
        var submittedTps: Double
        var boundTps: Double
        var ratioToBound: Double
        var latencyMs: Latency?
        var admissionMs: Latency?
        var toProposalMs: Latency?
        var afterProposalMs: Latency?
        var committed: Int
        var failedReceipts: Int
        var nodes: [Node]
        struct Setup: Decodable {
            var preloaded: Int
            var settleSeconds: Double
            var settled: Bool?
        }
        var setup: Setup
    }

    func bench(_ arguments: [String], in directory: String) throws -> (status: Int32, report: Report?, output: String) {
        let file = directory + "/bench-\(UUID().uuidString).json"
        let status = try support.run(["bench"] + arguments + ["--json"], output: file)
        let output = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return (status, try? decoder.decode(Report.self, from: Data(output.utf8)), output)
    }

    @Test(arguments: ["kv", "noop"])
    func closedLoopLoadCommitsWhatItSubmits(_ workload: String) throws {
        let directory = TemporaryDirectory("e2e-bench")
        defer { directory.remove() }
        let run = try bench(
            [
                "--dir", directory.path + "/net", "--devnet", "2", "--clients", "4", "--workload", workload, "--concurrency", "2",
                "--batch", "20", "--duration", "2", "--warmup", "1", "--transactions-max", "4000",
            ], in: directory.path)
        #expect(run.status == 0, "\(run.output)")
        let report = try #require(run.report, "\(run.output)")
        #expect(report.committed > 0)
        #expect(report.failedReceipts == 0)
        #expect(report.committedTps > 0 && report.boundTps > 0)
        #expect(abs(report.ratioToBound - report.committedTps / report.boundTps) < 1e-9)
        let latency = try #require(report.latencyMs)
        #expect(latency.p50 > 0 && latency.p50 <= latency.p99)
        // A batch is answered before any of its transactions can commit.
        let admission = try #require(report.admissionMs)
        #expect(admission.p50 > 0 && admission.p50 <= admission.p99 && admission.p50 <= latency.p50)
        // Each transaction's latency is cut in two at its block's header time (whole
        // milliseconds), so neither part exceeds the whole by more than that rounding.
        let toProposal = try #require(report.toProposalMs)
        let afterProposal = try #require(report.afterProposalMs)
        #expect(toProposal.p50 > -1 && toProposal.p50 <= latency.p50 + 1)
        #expect(afterProposal.p50 > -1 && afterProposal.p50 <= latency.p50 + 1)
        #expect(report.nodes.count == 2 && report.nodes.allSatisfy { $0.peakRssMib > 0 })
        // The command stops the nodes it started.
        for index in 0..<2 {
            let pid = (try? String(contentsOfFile: directory.path + "/net/node\(index)/node.pid", encoding: .utf8)) ?? ""
            #expect(pid.isEmpty || kill(pid_t(pid.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, 0) != 0)
        }
    }

    /// A run on a new local network in a directory of its own, removed after.
    func benchOnANewNetwork(_ name: String, _ arguments: [String]) throws -> Report {
        let directory = TemporaryDirectory(name)
        defer { directory.remove() }
        let run = try bench(["--dir", directory.path + "/net"] + arguments, in: directory.path)
        #expect(run.status == 0, "\(run.output)")
        return try #require(run.report, "\(run.output)")
    }

    @Test func openLoopHoldsItsRateWellBelowSaturation() throws {
        let report = try benchOnANewNetwork(
            "e2e-bench-open",
            [
                "--devnet", "1", "--clients", "2", "--mode", "open", "--rate", "100", "--concurrency", "2", "--batch", "10",
                "--duration", "3", "--warmup", "1",
            ])
        #expect(report.submittedTps > 80 && report.submittedTps < 120)
        #expect(report.committed > 0)
    }

    @Test func aPreloadCommitsItsKeysBeforeTheRun() throws {
        let report = try benchOnANewNetwork(
            "e2e-bench-preload",
            [
                "--devnet", "1", "--clients", "2", "--preload", "300", "--concurrency", "2", "--batch", "20", "--duration", "1",
                "--warmup", "1", "--transactions-max", "2000", "--settle-max", "120",
            ])
        // Batches of 20 for 2 workers (280), then a round of 10 each: exactly 300, every one
        // committed (the bench fails otherwise), and the run's own load went on after.
        #expect(report.setup.preloaded == 300)
        #expect(report.committed > 0 && report.failedReceipts == 0)
        // A few hundred keys leave nothing to compact: the run waited for its store to say so.
        #expect(report.setup.settled == true)
        #expect(report.setup.settleSeconds < 120)
    }

    /// Many keys per preload transaction (`kv.putMany`), on nodes given the cache size
    /// asked for; each worker's sender holds `user0…` up to its share, the keys a run with
    /// `--records` of that share writes over.
    @Test func aBatchedPreloadWritesItsKeysWithFewerTransactions() async throws {
        let directory = TemporaryDirectory("e2e-bench-preload-batch")
        defer { directory.remove() }
        let net = directory.path + "/net"
        defer { _ = try? support.run(["devnet", "stop", "--dir", net]) }
        let run = try bench(
            [
                "--dir", net, "--devnet", "1", "--clients", "2", "--preload", "1000", "--preload-batch", "50",
                "--state-cache-mib", "64", "--state-heights-kept", "20", "--concurrency", "2", "--batch", "5", "--duration", "1", "--warmup", "1",
                "--records", "1", "--transactions-max", "2000", "--keep-running",
            ], in: directory.path)
        #expect(run.status == 0, "\(run.output)")
        let report = try #require(run.report, "\(run.output)")
        // 20 transactions of 50 keys, one to a request (ten times the 5 keys of a run's request): ten for each worker.
        #expect(report.setup.preloaded == 1_000)
        #expect(report.committed > 0 && report.failedReceipts == 0)
        let config = try NodeConfig.load(home: NetworkLayout.nodeHome(net, 0))
        #expect(config.limits.stateCacheMebibytes == 64)
        #expect(config.limits.stateHeightsKept == 20)

        let owner = Address(of: try KeyFile.load(NetworkLayout.clientKeyPath(net, 0)).publicKey, using: ChainHasher(.sha256))
        let api = "http://" + (try String(contentsOfFile: net + "/node0/api.addr", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
        for (key, present) in [("user0000000000", true), ("user0000000499", true), ("user0000000500", false)] {
            let (code, json) = try await support.request("GET", "\(api)/v1/kv/\(owner)/\(key)")
            #expect(code == 200 && json["exists"] as? Bool == present, "\(key) of the first sender: \(json)")
        }
        // Without --settle-max the run did not wait, and said so.
        #expect(report.setup.settled == nil && report.setup.settleSeconds == 0)
        // A node on RocksDB reports what its store owes; its memtables hold a few hundred
        // keys, far from a flush, so nothing is pending.
        let (code, status) = try await support.request("GET", "\(api)/v1/status")
        let storage = try #require(status["storage"] as? [String: Any], "\(status)")
        #expect(code == 200)
        #expect(storage["pendingCompactionBytes"] as? Int == 0, "\(storage)")
        #expect(storage["runningCompactions"] as? Int == 0, "\(storage)")
        #expect(storage["settled"] as? Bool == true, "\(storage)")
        #expect((storage["level0Files"] as? Int).map { $0 >= 0 } == true, "\(storage)")
    }

    @Test func badPreloadOptionsAreRefused() throws {
        let directory = TemporaryDirectory("e2e-bench-preload-bad")
        defer { directory.remove() }
        for arguments in [["--preload-batch", "0"], ["--preload-batch", "1025"], ["--state-cache-mib", "0"], ["--state-heights-kept", "3"]] {
            let run = try bench(["--dir", directory.path + "/net"] + arguments, in: directory.path)
            #expect(run.status != 0, "\(arguments)")
            #expect(!FileSystem.exists(directory.path + "/net/genesis.json"))
        }
    }

    @Test func aNodeThatIsNotThereIsAClearError() throws {
        let directory = TemporaryDirectory("e2e-bench-bad")
        defer { directory.remove() }
        let file = directory.path + "/out.txt"
        let status = try support.run(["bench", "--node", "http://127.0.0.1:1", "--key", directory.path + "/missing.json"], output: file)
        #expect(status != 0)
    }
}

/// Found by the load bench: a node whose quiet event stream had a client never finished
/// its graceful shutdown after SIGTERM.
@Suite(.serialized) struct ShutdownTests {
    let support = CrashRecoveryTests()

    @Test func sigtermStopsANodeWhileAnEventStreamIsOpen() async throws {
        let directory = TemporaryDirectory("e2e-stop")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try support.run(["init", "--home", network, "--api-port", "0", "--validators", "1"]) == 0)
        let node = try await support.start(home: network + "/node0")
        defer { if node.process.isRunning { kill(node.process.processIdentifier, SIGKILL) } }
        let endpoint = try LoopbackHTTP.Endpoint(url: node.endpoint)
        let stream = try LoopbackHTTP(endpoint, timeoutSeconds: 10)
        try stream.send(endpoint.request("GET", "/v1/events"))
        #expect(try stream.head().status == 200)

        node.process.terminate()
        // Bounded: 200 × 50 ms.
        for _ in 0..<200 where node.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!node.process.isRunning, "the node did not stop within 10 s of SIGTERM")
    }
}
