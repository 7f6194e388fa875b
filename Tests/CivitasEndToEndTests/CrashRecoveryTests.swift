import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasTesting
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Real node processes on 127.0.0.1 (free ports chosen by the kernel).
@Suite(.serialized) struct CrashRecoveryTests {
    static let binary = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/civitas").path

    struct RunningNode {
        let process: Process
        let endpoint: String
    }

    /// Runs a civitas command to completion and returns its exit status. Spawned and
    /// reaped directly: `devnet start` leaves node processes behind, which Foundation's
    /// `Process` does not cope with when waiting.
    /// `output`: a file that receives the command's standard output.
    func run(_ arguments: [String], output: String = "/dev/null") throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let all = [Self.binary] + arguments
        var argv: [UnsafeMutablePointer<CChar>?] = all.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, Self.binary, &actions, nil, &argv, environ) == 0 else {
            throw ClientError("cannot run \(Self.binary)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    func start(home: String) async throws -> RunningNode {
        try? FileManager.default.removeItem(atPath: home + "/api.addr")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["node", "run", "--home", home]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // Bounded wait for the node to announce its port.
        for _ in 0..<600 {
            if let text = try? String(contentsOfFile: home + "/api.addr", encoding: .utf8) {
                return RunningNode(process: process, endpoint: "http://" + text.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw ClientError("node in \(home) did not start")
    }

    func request(_ method: String, _ url: String, body: Data? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: url)!, timeoutInterval: 30)
        request.httpMethod = method
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, json)
    }

    @Test func committedTransactionsSurviveSIGKILL() async throws {
        let directory = TemporaryDirectory("e2e")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try run(["init", "--home", network, "--api-port", "0", "--validators", "1"]) == 0)
        let home = network + "/node0"
        let key = try KeyFile.load(network + "/keys/client.json")
        let builder = TransactionBuilder(chainId: "civitas-local", hashSuite: .sha256, key: key)
        func signed(_ nonce: UInt64) throws -> Data {
            let call = Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array("k\(nonce)".utf8), value: Array("v\(nonce)".utf8)))
            return Data(try builder.sign(call: call, nonce: nonce, expiryHeight: 10_000).transaction.canonicalBytes)
        }

        var node = try await start(home: home)
        var committed: [(id: String, height: Int)] = []
        for nonce in UInt64(0)..<15 {
            let (status, json) = try await request("POST", node.endpoint + "/v1/transactions?wait=true", body: try signed(nonce))
            #expect(status == 200)
            let receipt = try #require(json["receipt"] as? [String: Any])
            committed.append((json["id"] as! String, receipt["height"] as! Int))
        }
        let (_, before) = try await request("GET", node.endpoint + "/v1/status")
        let heightBefore = before["height"] as! Int
        let rootBefore = before["stateRoot"] as! String

        // More in flight, then SIGKILL: nothing reported committed may be lost.
        for nonce in UInt64(15)..<40 { _ = try await request("POST", node.endpoint + "/v1/transactions", body: try signed(nonce)) }
        kill(node.process.processIdentifier, SIGKILL)
        node.process.waitUntilExit()

        node = try await start(home: home)
        defer {
            node.process.terminate()
            node.process.waitUntilExit()
        }
        let (_, after) = try await request("GET", node.endpoint + "/v1/status")
        #expect((after["height"] as! Int) >= heightBefore)
        for (id, height) in committed {
            let (status, json) = try await request("GET", node.endpoint + "/v1/transactions/\(id)")
            #expect(status == 200)
            #expect((json["receipt"] as? [String: Any])?["height"] as? Int == height)
        }
        let (_, block) = try await request("GET", node.endpoint + "/v1/blocks/\(heightBefore)")
        #expect(block["stateRoot"] as? String == rootBefore)
        // The restarted node keeps working.
        let next = UInt64((try await request("GET", node.endpoint + "/v1/accounts/\(builder.address)")).1["nonce"] as! Int)
        let (status, _) = try await request("POST", node.endpoint + "/v1/transactions?wait=true", body: try signed(next))
        #expect(status == 200)
        // Its metrics show the state tree's nodes in the cache after that block.
        let (metrics, _) = try await URLSession.shared.data(from: URL(string: node.endpoint + "/metrics")!)
        let text = String(decoding: metrics, as: UTF8.self)
        let cached = text.split(separator: "\n").first { $0.hasPrefix("civitas_state_cache_nodes ") }
        #expect((cached.flatMap { Double($0.split(separator: " ")[1]) } ?? 0) > 0, "\(text)")
        #expect(text.contains("civitas_state_cache_bytes "))
        // And what its store owes: the restart flushed the recovered WAL into level 0.
        let level0 = text.split(separator: "\n").first { $0.hasPrefix("civitas_store_level0_files ") }
        #expect((level0.flatMap { Double($0.split(separator: " ")[1]) } ?? 0) >= 1, "\(text)")
        #expect(text.contains("civitas_store_pending_compaction_bytes "))
        #expect(text.contains("civitas_store_running_compactions "))
    }

    @Test func badRequestsGetJSONErrors() async throws {
        let directory = TemporaryDirectory("e2e")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try run(["init", "--home", network, "--api-port", "0", "--validators", "1"]) == 0)
        let node = try await start(home: network + "/node0")
        defer {
            node.process.terminate()
            node.process.waitUntilExit()
        }
        let (malformed, json) = try await request("POST", node.endpoint + "/v1/transactions", body: Data([1, 2, 3]))
        #expect(malformed == 400)
        #expect((json["error"] as? [String: Any])?["code"] as? String == "tx.malformed")
        let (huge, hugeJSON) = try await request("POST", node.endpoint + "/v1/transactions", body: Data(count: 400_000))
        #expect(huge == 413)
        #expect((hugeJSON["error"] as? [String: Any])?["code"] as? String == "api.request_too_large")
        let (missing, _) = try await request("GET", node.endpoint + "/v1/blocks/999")
        #expect(missing == 404)
        let (badHash, _) = try await request("GET", node.endpoint + "/v1/transactions/xyz")
        #expect(badHash == 400)
    }
}
