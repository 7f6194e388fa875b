import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasNode
import CivitasStorage
import Foundation

/// A one-organisation chain for tests: a validator, an admin and funded clients, each
/// key derived from a fixed seed so that runs are repeatable.
public struct TestChain: Sendable {
    public let genesis: Genesis
    public let validator: PrivateKey
    public let admin: PrivateKey
    public let clients: [PrivateKey]
    public let outsider: PrivateKey
    public let hasher: ChainHasher

    public static let clientBalance: UInt64 = 1_000_000

    public init(
        hashSuite: HashSuiteID = .sha256, schemes: [SignatureScheme] = SignatureScheme.allCases,
        clientSchemes: [SignatureScheme] = [.ed25519, .ed25519], blockTransactionsMax: UInt32 = 5_000
    ) {
        func key(_ scheme: SignatureScheme, _ seed: UInt8) -> PrivateKey {
            // Scalars below the group order for P-256 and SM2; any 32 bytes for the seeds.
            try! PrivateKey(scheme: scheme, rawRepresentation: [0x01] + [UInt8](repeating: seed, count: 31))
        }
        validator = key(.ed25519, 1)
        admin = key(.ed25519, 2)
        outsider = key(.ed25519, 99)
        clients = clientSchemes.enumerated().map { key($1, UInt8(10 + $0)) }
        hasher = ChainHasher(hashSuite)
        genesis = Genesis(
            chainId: "test-chain", hashSuite: hashSuite, signatureSchemes: schemes,
            organisations: [
                .init(
                    id: "org1", name: "Organisation One", admins: [admin.publicKey], members: clients.map(\.publicKey),
                    validators: [.init(publicKey: validator.publicKey, power: 1)])
            ],
            allocations: clients.map { .init(account: $0.publicKey, amount: Self.clientBalance) },
            consensus: .init(blockIntervalMilliseconds: 50, blockTransactionsMax: blockTransactionsMax),
            timestampMilliseconds: 1_700_000_000_000)
    }

    /// A node whose clock moves only with `advance(byMilliseconds:)` (or `produceBlock`).
    public func node(store: any KeyValueStore = MemoryStore(), limits: NodeLimits = .init()) throws -> Node {
        try Node(genesis: genesis, store: store, validatorKey: validator, limits: limits, timing: .manual(startMilliseconds: 1_000))
    }

    /// A node on the system clock, producing blocks by itself once `run()` is called.
    public func liveNode(store: any KeyValueStore = MemoryStore(), limits: NodeLimits = .init()) throws -> Node {
        try Node(genesis: genesis, store: store, validatorKey: validator, limits: limits)
    }

    public func builder(_ client: Int = 0) -> TransactionBuilder {
        TransactionBuilder(chainId: genesis.chainId, hashSuite: genesis.hashSuite, key: clients[client])
    }

    public func address(_ key: PrivateKey) -> Address { Address(of: key.publicKey, using: hasher) }

    /// A signed and verified transaction from client `client`.
    public func transaction(
        _ call: Call, client: Int = 0, nonce: UInt64, expiryHeight: UInt64 = 1_000, gasLimit: UInt64 = 1_000_000
    ) -> VerifiedTransaction {
        let (signed, _) = try! builder(client).sign(call: call, nonce: nonce, expiryHeight: expiryHeight, gasLimit: gasLimit)
        return try! VerifiedTransaction.verify(signed, hasher: hasher, verifier: SignatureVerifiers())
    }
}

extension Node {
    /// Moves a manual clock by one block interval: pending transactions are proposed,
    /// certified and committed (one validator is the whole quorum). Returns the latest
    /// committed block if it moved.
    @discardableResult
    public func produceBlock() async -> CommittedBlock? {
        let before = await latest.block.header.height
        await advance(byMilliseconds: genesis.consensus.blockIntervalMilliseconds)
        let after = await latest
        return after.block.header.height > before ? after : nil
    }
}

/// A fresh directory under the system temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "civitas") {
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
