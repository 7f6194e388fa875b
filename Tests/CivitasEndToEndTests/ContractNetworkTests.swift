import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasTesting
import Foundation
import Testing

/// A Swift contract built, deployed, called, queried and proven through the `civitas`
/// command line against four validator processes.
@Suite(.serialized) struct ContractNetworkTests {
    let support = CrashRecoveryTests()
    let network = ValidatorNetworkTests()
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Runs a civitas command; its standard output, and whether it exited 0.
    func civitas(_ arguments: [String], in directory: String) throws -> (ok: Bool, output: String) {
        let file = directory + "/out-\(UUID().uuidString).txt"
        let status = try support.run(arguments, output: file)
        let output = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return (status == 0, output)
    }

    @Test func citizenPointsBuiltDeployedUsedAndProvenThroughTheCLI() async throws {
        let directory = TemporaryDirectory("e2e-contract")
        defer { directory.remove() }
        let net = directory.path + "/net"
        #expect(try support.run(["devnet", "start", "--dir", net, "--base-port", "0"]) == 0)
        defer { _ = try? support.run(["devnet", "stop", "--dir", net]) }
        try await network.waitForHeight(net, [0, 1, 2, 3], atLeast: 0)
        let node0 = try network.endpoint(net, 0)
        let node3 = try network.endpoint(net, 3)
        let key = net + "/keys/client.json"
        let wasm = directory.path + "/citizen-points.wasm"

        let build = try civitas(["contract", "build", Self.repository + "/contracts/examples/citizen-points", "--output", wasm], in: directory.path)
        #expect(build.ok, "\(build.output)")

        let deploy = try civitas(["contract", "deploy", wasm, "--init", "[]", "--key", key, "--node", node0], in: directory.path)
        #expect(deploy.ok, "\(deploy.output)")
        let addressLine = try #require(deploy.output.split(separator: "\n").first { $0.hasPrefix("contract address ") })
        let contract = String(addressLine.dropFirst("contract address ".count))

        let me = Address(of: try KeyFile.load(key).publicKey, using: ChainHasher(.sha256)).description
        let citizen = String(repeating: "ab", count: 32)
        for (method, arguments) in [
            ("set_rule", #"["recycling", 10]"#), ("grant_issuer", #"[{"address": "\#(me)"}]"#),
            ("earn", #"[{"address": "\#(citizen)"}, "recycling"]"#), ("earn", #"[{"address": "\#(citizen)"}, "recycling"]"#),
        ] {
            let called = try civitas(["contract", "call", contract, method, arguments, "--key", key, "--node", node0], in: directory.path)
            #expect(called.ok, "\(method): \(called.output)")
        }
        let refused = try civitas(["contract", "call", contract, "earn", #"[{"address": "\#(citizen)"}, "speeding"]"#, "--key", key, "--node", node0], in: directory.path)
        #expect(!refused.ok && refused.output.contains("contract.reverted: no such rule"), "\(refused.output)")

        // Any validator answers the same; the query is read-only.
        try await network.waitForHeight(net, [3], atLeast: 6)
        for node in [node0, node3] {
            let query = try civitas(["contract", "query", contract, "balance", #"[{"address": "\#(citizen)"}]"#, "--node", node], in: directory.path)
            #expect(query.ok && query.output.hasPrefix("[20]"), "\(query.output)")
        }
        let show = try civitas(["contract", "show", contract, "--node", node3], in: directory.path)
        #expect(show.ok && show.output.contains("version 1") && show.output.contains("upgrade policy owner"), "\(show.output)")

        // The citizen's balance in the contract's storage, proven to a genesis-only light client.
        let proofFile = directory.path + "/proof.json"
        let storageKey = "0x" + Array("balance/".utf8).hexString + citizen
        let get = try civitas(["contract", "get", contract, storageKey, "--out", proofFile, "--node", node3], in: directory.path)
        #expect(get.ok, "\(get.output)")
        let verify = try civitas(["proof", "verify", proofFile, "--genesis", net + "/genesis.json"], in: directory.path)
        #expect(verify.ok && verify.output.contains("proof is valid"), "\(verify.output)")
        #expect(verify.output.contains("0x0000000000000014"), "\(verify.output)")

        let bad = try civitas(["contract", "call", contract, "earn", "not json", "--key", key, "--node", node0], in: directory.path)
        #expect(!bad.ok)
    }
}
