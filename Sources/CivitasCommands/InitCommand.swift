import ArgumentParser
import CivitasClient
import CivitasCore
import CivitasCrypto
import Foundation

/// Writes a new network into a directory: `genesis.json`, organisation keys in `keys/`,
/// and one home per validator (`node0/`, …) with its `node.json` and validator key.
struct NetworkLayout {
    var directory: String
    var chainId: String
    var hashSuite: HashSuiteID
    var schemes: [SignatureScheme]
    var keyScheme: SignatureScheme
    var organisations: Int
    var basePort: Int
    var clientBalance: UInt64 = 1_000_000_000

    static func nodeHome(_ directory: String, _ index: Int) -> String { "\(directory)/node\(index)" }

    func write() throws -> Genesis {
        guard !FileSystem.exists(directory + "/genesis.json") else {
            throw CommandError("\(directory)/genesis.json exists; refusing to overwrite a network")
        }
        guard schemes.contains(keyScheme) else {
            throw CommandError("--scheme \(keyScheme) is not among the accepted --schemes")
        }
        guard organisations == 1 else {
            throw CommandError("this version runs single-validator networks; multi-validator BFT is not built yet")
        }
        let hasher = ChainHasher(hashSuite)
        try FileSystem.createDirectory(directory + "/keys")
        var orgs: [Genesis.Organisation] = []
        var allocations: [Genesis.Allocation] = []
        for index in 0..<organisations {
            let id = "org\(index + 1)"
            let admin = try PrivateKey.generate(keyScheme)
            let validator = try PrivateKey.generate(keyScheme)
            try KeyFile(admin, hasher: hasher).write(to: "\(directory)/keys/\(id)-admin.json")
            let home = Self.nodeHome(directory, index)
            try FileSystem.createDirectory(home + "/keys")
            try KeyFile(validator, hasher: hasher).write(to: home + "/keys/validator.json")
            var members: [PublicKey] = []
            if index == 0 {
                let client = try PrivateKey.generate(keyScheme)
                try KeyFile(client, hasher: hasher).write(to: "\(directory)/keys/client.json")
                members.append(client.publicKey)
                allocations.append(.init(account: client.publicKey, amount: clientBalance))
            }
            orgs.append(
                .init(
                    id: id, name: "Organisation \(index + 1)", admins: [admin.publicKey], members: members,
                    validators: [.init(publicKey: validator.publicKey, power: 1)]))
        }
        let genesis = Genesis(
            chainId: chainId, hashSuite: hashSuite, signatureSchemes: schemes, organisations: orgs, allocations: allocations,
            timestampMilliseconds: UInt64(Date().timeIntervalSince1970 * 1000))
        do { try genesis.validate() } catch { throw CommandError(error.description) }
        try genesis.write(to: URL(fileURLWithPath: directory + "/genesis.json"))
        for index in 0..<organisations {
            let home = Self.nodeHome(directory, index)
            try genesis.write(to: URL(fileURLWithPath: home + "/genesis.json"))
            try NodeConfig(apiPort: basePort == 0 ? 0 : basePort + index).write(home: home)
        }
        return genesis
    }
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a network: genesis, organisation keys and validator homes.",
        discussion: """
            Writes DIR/genesis.json, DIR/keys/ (organisation admin keys and a funded client key) and \
            DIR/node0/ (node.json, genesis.json, keys/validator.json). Start the node with \
            `civitas node run --home DIR/node0`.
            """)

    @Option(help: "Directory to create the network in.")
    var home: String

    @Option(help: "Chain id (ASCII letters, digits, - _ .).")
    var chainId = "civitas-local"

    @Option(help: "Hash suite: sha256 (international) or sm3 (national).")
    var hashSuite: HashSuiteID = .sha256

    @Option(parsing: .upToNextOption, help: "Signature schemes the chain accepts.")
    var schemes: [SignatureScheme] = [.ed25519, .p256, .sm2, .mldsa65]

    @Option(help: "Scheme of the keys generated here.")
    var scheme: SignatureScheme = .ed25519

    @Option(help: "API port of node0 (node i listens on port + i); 0 picks free ports.")
    var apiPort = 7700

    func run() async throws {
        let genesis = try NetworkLayout(
            directory: home, chainId: chainId, hashSuite: hashSuite, schemes: schemes, keyScheme: scheme, organisations: 1,
            basePort: apiPort
        ).write()
        print("created chain \(genesis.chainId) (\(genesis.hashSuite.name); schemes \(genesis.signatureSchemes.map(\.name).joined(separator: ", ")))")
        print("genesis: \(home)/genesis.json")
        print("client key: \(home)/keys/client.json")
        print("run: civitas node run --home \(NetworkLayout.nodeHome(home, 0))")
    }
}
