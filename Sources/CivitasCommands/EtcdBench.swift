import ArgumentParser
import CivitasTesting
import Foundation

/// The same `kv` load against an etcd cluster through its HTTP gateway (`/v3/kv/put`),
/// the crash-fault-tolerant reference the throughput issue compares with:
/// `scripts/bench-etcd.sh` starts a local cluster and runs this beside `civitas bench`.
struct EtcdBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etcd", abstract: "Closed-loop puts against an etcd cluster's HTTP gateway, for comparison.")

    @Option(name: .customLong("endpoint"), help: "Client URL of an etcd member (repeat for several).") var endpoints: [String] = []
    @Option(help: "Concurrent clients, each with one put in flight.") var concurrency = 64
    @Option(help: "Seconds measured, after the warm-up.") var duration = 20.0
    @Option(help: "Seconds of load before measuring.") var warmup = 5.0
    @Option(help: "Distinct keys written.") var records = 10_000
    @Option(help: "Bytes per value.") var valueBytes = 100
    @Flag var json = false

    func validate() throws {
        guard !endpoints.isEmpty else { throw ValidationError("give --endpoint URL (repeat for each member)") }
        guard (1...1_024).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
        guard (1...3_600).contains(duration) else { throw ValidationError("--duration must be 1 to 3600 seconds") }
        guard (0...600).contains(warmup) else { throw ValidationError("--warmup must be 0 to 600 seconds") }
        guard (1...100_000_000).contains(records) else { throw ValidationError("--records must be 1 to 100000000") }
        guard (0...16_384).contains(valueBytes) else { throw ValidationError("--value-bytes must be 0 to 16384") }
    }

    struct Report: Codable {
        var endpoints: Int
        var concurrency: Int
        var durationSeconds: Double
        var committedTps: Double
        var latencyMs: LatencySummary?
        var errors: Int
    }

    /// Per-client results, each slot written by its own thread before `done` is signalled.
    private final class Tally: @unchecked Sendable {
        var latencies: [Double] = []
        var completed = 0
        var errors = 0
        var failure: String?
    }

    func run() async throws {
        let targets = try endpoints.map { try LoopbackHTTP.Endpoint(url: $0) }
        let origin = ContinuousClock.now
        let warmupEnd = origin + .milliseconds(Int64(warmup * 1_000))
        let end = warmupEnd + .milliseconds(Int64(duration * 1_000))
        let done = DispatchSemaphore(value: 0)
        let tallies = (0..<concurrency).map { _ in Tally() }
        for (client, tally) in tallies.enumerated() {
            let endpoint = targets[client % targets.count]
            // Requests made before the clock starts, cycled: the client only sends bytes.
            var random = SeededRandom(seed: UInt64(client) &+ 1)
            let requests = (0..<256).map { _ -> [UInt8] in
                let key = Data(String(format: "user%010d", Int(random.next() % UInt64(records))).utf8).base64EncodedString()
                let value = Data((0..<valueBytes).map { _ in UInt8(ascii: "a") + UInt8(random.next() % 26) }).base64EncodedString()
                return endpoint.request("POST", "/v3/kv/put", body: Array("{\"key\":\"\(key)\",\"value\":\"\(value)\"}".utf8))
            }
            let thread = Thread {
                defer { done.signal() }
                do {
                    let connection = try LoopbackHTTP(endpoint, timeoutSeconds: 30)
                    var step = 0
                    while ContinuousClock.now < end, step < 100_000_000 {
                        let sent = ContinuousClock.now
                        try connection.send(requests[step % requests.count])
                        let (status, _) = try connection.response()
                        let answered = ContinuousClock.now
                        step += 1
                        guard sent >= warmupEnd, answered < end else { continue }
                        if status == 200 {
                            tally.completed += 1
                            tally.latencies.append((answered - sent).seconds * 1_000)
                        } else {
                            tally.errors += 1
                        }
                    }
                } catch {
                    tally.failure = "client \(client): \(error)"
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        for _ in 0..<concurrency { await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                done.wait()
                continuation.resume()
            }
        } }
        if let failure = tallies.compactMap(\.failure).first { throw CommandError(failure) }
        let report = Report(
            endpoints: targets.count, concurrency: concurrency, durationSeconds: duration,
            committedTps: Double(tallies.reduce(0) { $0 + $1.completed }) / duration,
            latencyMs: LatencySummary(milliseconds: tallies.flatMap(\.latencies)), errors: tallies.reduce(0) { $0 + $1.errors })
        if json { return try Output.json(report, snakeCase: true) }
        print("etcd puts, \(targets.count) endpoints, \(concurrency) clients, \(Int(duration)) s after \(Int(warmup)) s warm-up")
        print(String(format: "  committed      %9.0f puts/s   (%d errors)", report.committedTps, report.errors))
        if let latency = report.latencyMs {
            print(String(format: "  latency ms     p50 %.1f   p95 %.1f   p99 %.1f   max %.1f", latency.p50, latency.p95, latency.p99, latency.max))
        }
    }
}
