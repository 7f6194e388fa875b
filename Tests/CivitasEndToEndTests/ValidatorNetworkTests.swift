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

/// Four validator processes on 127.0.0.1 (`civitas devnet` with free ports), talking
/// over mutual TLS. Every wait is bounded; the network is stopped whatever happens.
@Suite(.serialized) struct ValidatorNetworkTests {
    let support = CrashRecoveryTests()

    func endpoint(_ network: String, _ index: Int) throws -> String {
        let text = try String(contentsOfFile: "\(network)/node\(index)/api.addr", encoding: .utf8)
        return "http://" + text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func status(_ network: String, _ index: Int) async -> [String: Any]? {
        guard let base = try? endpoint(network, index), let (code, json) = try? await support.request("GET", base + "/v1/status"),
            code == 200
        else { return nil }
        return json
    }

    /// Waits until every listed node has committed at least `height`.
    func waitForHeight(_ network: String, _ nodes: [Int], atLeast height: Int, seconds: Int = 60) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var reached = true
            for node in nodes {
                let current = await status(network, node)?["height"] as? Int ?? -1
                if current < height { reached = false }
            }
            if reached { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ClientError("nodes \(nodes) did not reach height \(height) within \(seconds) s")
    }

    /// The devnet's funded client.
    func client(_ network: String) throws -> TransactionBuilder {
        TransactionBuilder(chainId: "civitas-devnet", hashSuite: .sha256, key: try KeyFile.load(network + "/keys/client.json"))
    }

    /// A signed `kv put` as the bytes the API takes.
    func put(_ builder: TransactionBuilder, nonce: UInt64, key: [UInt8], value: [UInt8]) throws -> Data {
        let call = Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: key, value: value))
        return Data(try builder.sign(call: call, nonce: nonce, expiryHeight: 100_000).transaction.canonicalBytes)
    }

    func killValidator(_ network: String, _ index: Int) throws {
        let pid = try String(contentsOfFile: network + "/node\(index)/node.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        kill(pid_t(pid)!, SIGKILL)
    }

    @Test func aValidatorKilledAndWipedCatchesUpAndNothingCommittedIsLost() async throws {
        let directory = TemporaryDirectory("e2e-bft")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try support.run(["devnet", "start", "--dir", network, "--base-port", "0"]) == 0)
        defer { _ = try? support.run(["devnet", "stop", "--dir", network]) }
        // Each node process allocates through jemalloc, which the binary links.
        for index in 0..<4 {
            let pid = try String(contentsOfFile: network + "/node\(index)/node.pid", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // /proc files report no size, so they are read to their end, not by length.
            let handle = try #require(FileHandle(forReadingAtPath: "/proc/\(pid)/maps"))
            let maps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
            try handle.close()
            #expect(maps.contains("libjemalloc"), "node\(index) does not map libjemalloc")
        }

        let builder = try client(network)
        func signed(_ nonce: UInt64) throws -> Data {
            try put(builder, nonce: nonce, key: Array("k\(nonce)".utf8), value: Array("v\(nonce)".utf8))
        }
        var committed: [(id: String, height: Int, block: String)] = []
        func submit(_ nonce: UInt64, to node: Int) async throws {
            let (code, json) = try await support.request(
                "POST", try endpoint(network, node) + "/v1/transactions?wait=true&timeout=20000", body: try signed(nonce))
            #expect(code == 200, "nonce \(nonce) to node\(node): \(json)")
            guard let receipt = json["receipt"] as? [String: Any] else { return }
            committed.append((json["id"] as! String, receipt["height"] as! Int, receipt["blockHash"] as! String))
        }

        // All four up: submit to different nodes.
        for nonce in UInt64(0)..<8 { try await submit(nonce, to: Int(nonce % 4)) }

        // Validator 2 dies (SIGKILL); the other three keep committing.
        try killValidator(network, 2)
        for nonce in UInt64(8)..<14 { try await submit(nonce, to: [0, 1, 3][Int(nonce % 3)]) }

        // It comes back with its data directory deleted: devnet starts only that node.
        try FileManager.default.removeItem(atPath: network + "/node2/data")
        #expect(try support.run(["devnet", "start", "--dir", network]) == 0)
        for nonce in UInt64(14)..<18 { try await submit(nonce, to: Int(nonce % 4)) }

        let top = committed.map(\.height).max() ?? 0
        try await waitForHeight(network, [0, 1, 2, 3], atLeast: top)
        for node in 0..<4 {
            let base = try endpoint(network, node)
            for (id, height, block) in committed {
                let (code, json) = try await support.request("GET", base + "/v1/transactions/\(id)")
                #expect(code == 200, "node\(node) lacks \(id)")
                let receipt = json["receipt"] as? [String: Any]
                #expect(receipt?["height"] as? Int == height && receipt?["blockHash"] as? String == block, "node\(node), \(id)")
            }
            // Identical ledgers: the same block at every height up to the last commit.
            for height in 1...top {
                let (_, mine) = try await support.request("GET", base + "/v1/blocks/\(height)")
                let (_, reference) = try await support.request("GET", try endpoint(network, 0) + "/v1/blocks/\(height)")
                #expect(mine["hash"] as? String == reference["hash"] as? String, "node\(node) height \(height)")
                #expect(mine["stateRoot"] as? String == reference["stateRoot"] as? String)
            }
        }
    }

    @Test func twoOfFourDownHaltsSafelyAndTheChainResumesWhenOneReturns() async throws {
        let directory = TemporaryDirectory("e2e-halt")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try support.run(["devnet", "start", "--dir", network, "--base-port", "0"]) == 0)
        defer { _ = try? support.run(["devnet", "stop", "--dir", network]) }
        let builder = try client(network)
        func signed(_ nonce: UInt64) throws -> Data { try put(builder, nonce: nonce, key: [UInt8(nonce)], value: [1]) }
        let (code, _) = try await support.request("POST", try endpoint(network, 0) + "/v1/transactions?wait=true&timeout=20000", body: try signed(0))
        #expect(code == 200)

        for node in [2, 3] {
            try killValidator(network, node)
        }
        let before = await status(network, 0)?["height"] as? Int ?? -1
        // Two of four cannot form a quorum: the transaction waits, nothing commits.
        let (halted, json) = try await support.request("POST", try endpoint(network, 0) + "/v1/transactions?wait=true&timeout=3000", body: try signed(1))
        #expect(halted == 202 && json["status"] as? String == "timeout")
        #expect(await status(network, 0)?["height"] as? Int == before)
        #expect(await status(network, 1)?["height"] as? Int == before)

        // One returns: three of four, and the pending transaction commits by itself.
        let returned = try await support.start(home: network + "/node2")
        defer {
            returned.process.terminate()
            returned.process.waitUntilExit()
        }
        let id = json["id"] as! String
        let deadline = ContinuousClock.now + .seconds(60)
        var found = false
        while !found && ContinuousClock.now < deadline {
            found = (try? await support.request("GET", try endpoint(network, 0) + "/v1/transactions/\(id)"))?.0 == 200
            if !found { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(found, "the chain did not resume")
    }

    @Test func aValidatorKilledUnderLoadRejoinsAndEveryTransactionCommitsOnAllNodes() async throws {
        let directory = TemporaryDirectory("e2e-load")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try support.run(["devnet", "start", "--dir", network, "--base-port", "0"]) == 0)
        defer { _ = try? support.run(["devnet", "stop", "--dir", network]) }
        let builder = try client(network)
        var ids: [String] = []
        // 90 transactions sent without waiting to nodes 0, 1 and 3 in turn; node 2 is
        // killed after the first third and restarted (with its data) after the second.
        for nonce in UInt64(0)..<90 {
            if nonce == 30 {
                try killValidator(network, 2)
            }
            if nonce == 60 { #expect(try support.run(["devnet", "start", "--dir", network]) == 0) }
            let body = try put(builder, nonce: nonce, key: Array("load\(nonce % 7)".utf8), value: Array("\(nonce)".utf8))
            let (code, json) = try await support.request("POST", try endpoint(network, [0, 1, 3][Int(nonce % 3)]) + "/v1/transactions", body: body)
            #expect(code == 202, "nonce \(nonce): \(json)")
            ids.append(json["id"] as? String ?? "")
        }
        // Every transaction commits on every node, in the same block everywhere.
        let deadline = ContinuousClock.now + .seconds(90)
        var missing = ids
        while !missing.isEmpty && ContinuousClock.now < deadline {
            var still: [String] = []
            for id in missing {
                for node in 0..<4 where (try? await support.request("GET", try endpoint(network, node) + "/v1/transactions/\(id)"))?.0 != 200 {
                    still.append(id)
                    break
                }
            }
            missing = still
            if !missing.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(missing.isEmpty, "\(missing.count) of \(ids.count) transactions not committed on every node")
        for id in ids.prefix(90) where missing.isEmpty {
            var blocks: Set<String> = []
            for node in 0..<4 {
                let (_, json) = try await support.request("GET", try endpoint(network, node) + "/v1/transactions/\(id)")
                blocks.insert((json["receipt"] as? [String: Any])?["blockHash"] as? String ?? "")
            }
            #expect(blocks.count == 1, "transaction \(id) is in different blocks on different nodes")
        }
    }

    /// Runs a command and returns what it printed.
    func output(_ arguments: [String], in directory: String) throws -> (status: Int32, text: String) {
        let file = directory + "/command-output.txt"
        let status = try support.run(arguments, output: file)
        return (status, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
    }

    @Test func aValidatorAddedAndAnotherRemovedByGovernanceUnderLoad() async throws {
        let directory = TemporaryDirectory("e2e-governance")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try support.run(["devnet", "start", "--dir", network, "--base-port", "0"]) == 0)
        defer { _ = try? support.run(["devnet", "stop", "--dir", network]) }
        // A fifth organisation prepares its keys, CA and node; the node starts as a follower.
        #expect(try support.run(["devnet", "add-organisation", "--dir", network]) == 0)
        #expect(try support.run(["devnet", "start", "--dir", network]) == 0)
        let org5Admin = try KeyFile.load(network + "/keys/org5-admin.json").publicKey

        // Load: transactions sent without waiting, to nodes 0, 2 and 3 in turn, all along.
        let builder = try client(network)
        let load = Task { () -> [String] in
            var ids: [String] = []
            for nonce in UInt64(0)..<120 {
                let body = try put(builder, nonce: nonce, key: Array("gov\(nonce % 5)".utf8), value: Array("\(nonce)".utf8))
                let (code, json) = try await support.request("POST", try endpoint(network, [0, 2, 3][Int(nonce % 3)]) + "/v1/transactions", body: body)
                if code == 202, let id = json["id"] as? String { ids.append(id) }
                try await Task.sleep(for: .milliseconds(40))
            }
            return ids
        }

        func governance(_ arguments: [String], admin: String) throws -> String {
            let result = try output(arguments + ["--key", "\(network)/keys/\(admin)-admin.json", "--node", try endpoint(network, 0)], in: directory.path)
            #expect(result.status == 0, "\(arguments.prefix(2)) as \(admin): \(result.text)")
            return result.text
        }
        func proposalId(_ text: String) -> String {
            text.split(separator: "\n").first { $0.hasPrefix("proposal ") }.map { String($0.dropFirst("proposal ".count)) } ?? ""
        }

        // Add: org1 proposes, org2 and org3 approve (3 of 4 organisations).
        let add = try governance(
            ["validator", "add", "--home", network + "/node4", "--organisation", "org5", "--tls-authority",
             network + "/keys/org5-ca-certificate.pem", "--organisation-admin", org5Admin.description], admin: "org1")
        for admin in ["org2", "org3"] { _ = try governance(["governance", "approve", proposalId(add)], admin: admin) }
        #expect(await status(network, 0)?["epoch"] as? Int == 1)

        // Remove validator 1 (org2's): org1 proposes, org3, org4 and org5 approve (4 of 5).
        let removed = try KeyFile.load(network + "/node1/keys/validator.json").publicKey
        let remove = try governance(["validator", "remove", "--validator-key", removed.description], admin: "org1")
        for admin in ["org3", "org4", "org5"] { _ = try governance(["governance", "approve", proposalId(remove)], admin: admin) }
        #expect(await status(network, 0)?["epoch"] as? Int == 2)

        let ids = try await load.value
        #expect(ids.count == 120)
        // Every transaction commits on the validators of epoch 2, in the same block.
        let members = [0, 2, 3, 4]
        let deadline = ContinuousClock.now + .seconds(90)
        var missing = ids
        while !missing.isEmpty && ContinuousClock.now < deadline {
            var still: [String] = []
            for id in missing {
                for node in members where (try? await support.request("GET", try endpoint(network, node) + "/v1/transactions/\(id)"))?.0 != 200 {
                    still.append(id)
                    break
                }
            }
            missing = still
            if !missing.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(missing.isEmpty, "\(missing.count) of \(ids.count) transactions not committed on every validator")
        // The added validator votes: it has an index in the new set and the ledgers agree.
        #expect(await status(network, 4)?["validatorIndex"] as? Int == 3)
        let top = await status(network, 0)?["height"] as? Int ?? 0
        try await waitForHeight(network, members, atLeast: top)
        for height in stride(from: 1, through: top, by: 1) {
            var hashes: Set<String> = []
            for node in members {
                let (_, block) = try await support.request("GET", try endpoint(network, node) + "/v1/blocks/\(height)")
                hashes.insert(block["hash"] as? String ?? "")
            }
            #expect(hashes.count == 1, "height \(height): nodes disagree")
        }
        // A proof from the latest block checks against the genesis alone, through both hand-overs.
        let proofFile = directory.path + "/proof.json"
        let (code, json) = try await support.request("GET", try endpoint(network, 4) + "/v1/state/\(ValidatorSet.stateKey.hexString)?proof=true")
        #expect(code == 200)
        let document = try JSONSerialization.data(withJSONObject: json["proof"] as Any)
        try document.write(to: URL(fileURLWithPath: proofFile))
        #expect(try support.run(["proof", "verify", proofFile, "--genesis", network + "/genesis.json"]) == 0)
    }

    @Test func aValidatorWhoseDiskIsLostReturnsFromASnapshot() async throws {
        let directory = TemporaryDirectory("e2e-snapshot")
        defer { directory.remove() }
        let network = directory.path + "/net"
        #expect(try support.run(["devnet", "start", "--dir", network, "--base-port", "0"]) == 0)
        defer { _ = try? support.run(["devnet", "stop", "--dir", network]) }
        let builder = try client(network)
        func submit(_ nonce: UInt64, to node: Int) async throws {
            let body = try put(builder, nonce: nonce, key: Array("snap\(nonce)".utf8), value: Array("v\(nonce)".utf8))
            let (code, json) = try await support.request("POST", try endpoint(network, node) + "/v1/transactions?wait=true&timeout=20000", body: body)
            #expect(code == 200, "nonce \(nonce): \(json)")
        }
        for nonce in UInt64(0)..<10 { try await submit(nonce, to: Int(nonce % 4)) }

        // Validator 2 loses its disk; its operator turns on state sync and starts it again.
        try killValidator(network, 2)
        try FileManager.default.removeItem(atPath: network + "/node2/data")
        let configPath = network + "/node2/node.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        config["stateSync"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let before = await status(network, 0)?["height"] as? Int ?? 0
        #expect(try support.run(["devnet", "start", "--dir", network]) == 0)
        for nonce in UInt64(10)..<14 { try await submit(nonce, to: [0, 1, 3][Int(nonce % 3)]) }

        let top = await status(network, 0)?["height"] as? Int ?? 0
        try await waitForHeight(network, [0, 1, 2, 3], atLeast: top)
        let mine = try endpoint(network, 2)
        let (_, block) = try await support.request("GET", mine + "/v1/blocks/\(top)")
        let (_, reference) = try await support.request("GET", try endpoint(network, 0) + "/v1/blocks/\(top)")
        #expect(block["hash"] as? String == reference["hash"] as? String && block["stateRoot"] as? String == reference["stateRoot"] as? String)
        // It did not replay: block 1 is not on it, but the state written then is.
        #expect(try await support.request("GET", mine + "/v1/blocks/1").0 == 404)
        let owner = builder.address.description
        let (code, value) = try await support.request("GET", mine + "/v1/kv/\(owner)/snap0")
        #expect(code == 200 && value["exists"] as? Bool == true, "\(value)")
        let log = (try? String(contentsOfFile: network + "/node2/node.log", encoding: .utf8)) ?? ""
        #expect(log.contains("loaded from a snapshot"), "node2 did not load a snapshot")
        #expect(before >= 10)
    }
}
