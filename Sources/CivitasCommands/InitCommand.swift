import ArgumentParser
import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasConsensus
import CivitasNetwork
import CivitasNode
import CivitasStorage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
    /// Funded member keys of org1: keys/client.json, then keys/client-1.json, … (load
    /// generators sign from many accounts, since each account's nonces are sequential).
    var clients = 1
    /// Each node's `limits.stateCacheMebibytes`; nil keeps the default.
    var stateCacheMebibytes: Int? = nil
    /// Each node's `limits.stateHeightsKept`; nil keeps the default.
    var stateHeightsKept: Int? = nil

    static func clientKeyPath(_ directory: String, _ index: Int) -> String {
        index == 0 ? "\(directory)/keys/client.json" : "\(directory)/keys/client-\(index).json"
    }

    static func nodeHome(_ directory: String, _ index: Int) -> String { "\(directory)/node\(index)" }

    func write() throws -> Genesis {
        guard !FileSystem.exists(directory + "/genesis.json") else {
            throw CommandError("\(directory)/genesis.json exists; refusing to overwrite a network")
        }
        guard schemes.contains(keyScheme) else {
            throw CommandError("--scheme \(keyScheme) is not among the accepted --schemes")
        }
        guard (1...16).contains(organisations) else { throw CommandError("a local network has 1 to 16 validators") }
        guard (1...Genesis.keysPerOrganisationMax - 1).contains(clients) else {
            throw CommandError("a local network has 1 to \(Genesis.keysPerOrganisationMax - 1) client keys")
        }
        let hasher = ChainHasher(hashSuite)
        try FileSystem.createDirectory(directory + "/keys")
        // Ports: API base+i and peer base+100+i, or free ones picked now when base is 0.
        let ports = basePort == 0 ? try FreePorts.pick(2 * organisations) : (0..<organisations).map { basePort + $0 } + (0..<organisations).map { basePort + 100 + $0 }
        var orgs: [Genesis.Organisation] = []
        var allocations: [Genesis.Allocation] = []
        var nodeIdentities: [TLSIdentity] = []
        for index in 0..<organisations {
            let id = "org\(index + 1)"
            let admin = try PrivateKey.generate(keyScheme)
            let validator = try PrivateKey.generate(keyScheme)
            try KeyFile(admin, hasher: hasher).write(to: "\(directory)/keys/\(id)-admin.json")
            let home = Self.nodeHome(directory, index)
            try FileSystem.createDirectory(home + "/keys")
            try KeyFile(validator, hasher: hasher).write(to: home + "/keys/validator.json")
            // Each organisation's CA signs its own node's TLS certificate; the CA key stays
            // with the organisation (here, in the network's keys directory).
            let authority = try TLSIdentity.makeAuthority(organisation: id)
            try FileSystem.write(Data(authority.certificatePEM.utf8), to: "\(directory)/keys/\(id)-ca-certificate.pem")
            try FileSystem.writeSecret(Data(authority.privateKeyPEM.utf8), to: "\(directory)/keys/\(id)-ca-key.pem")
            let node = try authority.issueNode(named: "node\(index)")
            try FileSystem.write(Data(node.certificatePEM.utf8), to: home + "/keys/tls-certificate.pem")
            try FileSystem.writeSecret(Data(node.privateKeyPEM.utf8), to: home + "/keys/tls-key.pem")
            nodeIdentities.append(node)
            var members: [PublicKey] = []
            if index == 0 {
                for number in 0..<clients {
                    let client = try PrivateKey.generate(keyScheme)
                    try KeyFile(client, hasher: hasher).write(to: Self.clientKeyPath(directory, number))
                    members.append(client.publicKey)
                    allocations.append(.init(account: client.publicKey, amount: clientBalance))
                }
            }
            orgs.append(
                .init(
                    id: id, name: "Organisation \(index + 1)", admins: [admin.publicKey], members: members,
                    validators: [.init(publicKey: validator.publicKey, power: 1)], tlsAuthority: authority.certificatePEM))
        }
        let genesis = Genesis(
            chainId: chainId, hashSuite: hashSuite, signatureSchemes: schemes, organisations: orgs, allocations: allocations,
            timestampMilliseconds: UInt64(Date().timeIntervalSince1970 * 1000))
        do { try genesis.validate() } catch { throw CommandError(error.description) }
        try genesis.write(to: URL(fileURLWithPath: directory + "/genesis.json"))
        for index in 0..<organisations {
            let home = Self.nodeHome(directory, index)
            try genesis.write(to: URL(fileURLWithPath: home + "/genesis.json"))
            let peers = (0..<organisations).filter { $0 != index }.map {
                NodeConfig.Peer(validator: $0, host: "127.0.0.1", port: ports[organisations + $0])
            }
            var config = NodeConfig(apiPort: ports[index], p2pPort: ports[organisations + index], peers: peers)
            if let stateCacheMebibytes { config.limits.stateCacheMebibytes = stateCacheMebibytes }
            if let stateHeightsKept { config.limits.stateHeightsKept = stateHeightsKept }
            try config.write(home: home)
            // A validator created here has never voted: say so in its safety data, so that
            // it votes from the first round. A node whose data directory is later lost
            // finds no safety data and abstains until it has caught up (docs/consensus.md).
            let store = try RocksDBStore(path: home + "/" + config.dataDirectory)
            try Ledger(store: store, hasher: hasher).persistSafety(SafetyData(epoch: 0).canonicalBytes)
        }
        return genesis
    }
}

/// A new organisation with one validator node, beside an existing network: what the
/// organisation prepares on its own host before governance adds it.
struct OrganisationLayout {
    var directory: String
    var id: String?

    struct Created {
        var id: String
        var home: String
        var admin: PublicKey
        var authorityFile: String
    }

    func write() throws -> Created {
        let genesis = try Genesis.load(from: URL(fileURLWithPath: directory + "/genesis.json"))
        let hasher = ChainHasher(genesis.hashSuite)
        var index = 0
        var peers: [NodeConfig.Peer] = []
        while FileSystem.exists(NetworkLayout.nodeHome(directory, index) + "/node.json") {
            let config = try NodeConfig.load(home: NetworkLayout.nodeHome(directory, index))
            // Peers are numbered as in the genesis; nodes added later are found through
            // the endpoints governance recorded.
            if index < (try genesis.validatorSet().validators.count) {
                peers.append(.init(validator: index, host: config.p2pHost, port: config.p2pPort))
            }
            index += 1
        }
        let id = self.id ?? "org\(index + 1)"
        guard !genesis.organisations.contains(where: { $0.id == id }), !FileSystem.exists(directory + "/keys/\(id)-admin.json") else {
            throw CommandError("organisation \(id) exists already in \(directory)")
        }
        let scheme = genesis.signatureSchemes.contains(.ed25519) ? SignatureScheme.ed25519 : genesis.signatureSchemes[0]
        let admin = try PrivateKey.generate(scheme)
        let validator = try PrivateKey.generate(scheme)
        try KeyFile(admin, hasher: hasher).write(to: "\(directory)/keys/\(id)-admin.json")
        let authority = try TLSIdentity.makeAuthority(organisation: id)
        let authorityFile = "\(directory)/keys/\(id)-ca-certificate.pem"
        try FileSystem.write(Data(authority.certificatePEM.utf8), to: authorityFile)
        try FileSystem.writeSecret(Data(authority.privateKeyPEM.utf8), to: "\(directory)/keys/\(id)-ca-key.pem")
        let home = NetworkLayout.nodeHome(directory, index)
        try FileSystem.createDirectory(home + "/keys")
        try KeyFile(validator, hasher: hasher).write(to: home + "/keys/validator.json")
        let node = try authority.issueNode(named: "node\(index)")
        try FileSystem.write(Data(node.certificatePEM.utf8), to: home + "/keys/tls-certificate.pem")
        try FileSystem.writeSecret(Data(node.privateKeyPEM.utf8), to: home + "/keys/tls-key.pem")
        try genesis.write(to: URL(fileURLWithPath: home + "/genesis.json"))
        let ports = try FreePorts.pick(2)
        let config = NodeConfig(apiPort: ports[0], p2pPort: ports[1], peers: peers)
        try config.write(home: home)
        let store = try RocksDBStore(path: home + "/" + config.dataDirectory)
        try Ledger(store: store, hasher: hasher).persistSafety(SafetyData(epoch: 0).canonicalBytes)
        return Created(id: id, home: home, admin: admin.publicKey, authorityFile: authorityFile)
    }
}

/// Free TCP ports on 127.0.0.1, all held open together while picked so they differ.
enum FreePorts {
    static func pick(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for socket in sockets { close(socket) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw CommandError("cannot open a socket to pick a port") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw CommandError("cannot bind a socket to pick a port") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a network: genesis, organisation keys and validator homes.",
        discussion: """
            Writes DIR/genesis.json, DIR/keys/ (per organisation: admin key, TLS CA certificate and key; \
            a funded client key) and DIR/nodeI/ for each validator (node.json, genesis.json, \
            keys/validator.json, keys/tls-certificate.pem, keys/tls-key.pem). Start each node with \
            `civitas node run --home DIR/nodeI`, or all of them with `civitas devnet start --dir DIR`.
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

    @Option(help: "API port of node0 (node i: port + i; its peer port: port + 100 + i); 0 picks free ports.")
    var apiPort = 7700

    @Option(help: "Number of organisations, each with one validator node (1 to 16).")
    var validators = 4

    func run() async throws {
        let genesis = try NetworkLayout(
            directory: home, chainId: chainId, hashSuite: hashSuite, schemes: schemes, keyScheme: scheme, organisations: validators,
            basePort: apiPort
        ).write()
        print("created chain \(genesis.chainId) (\(genesis.hashSuite.name); schemes \(genesis.signatureSchemes.map(\.name).joined(separator: ", ")))")
        print("genesis: \(home)/genesis.json")
        print("client key: \(home)/keys/client.json")
        print("run: civitas node run --home \(NetworkLayout.nodeHome(home, 0)) (and node1… for the other validators)")
    }
}
