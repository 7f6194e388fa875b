import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasState
import CivitasStorage

/// A chain without consensus: blocks of signed calls executed in order on a real state
/// tree. For module and contract tests. Organisation `org<i>` has admin `admins[i]`
/// and validator `validators[i]`; `outsider` is a plain member of org0.
public final class ExecutionChain {
    public let hasher = ChainHasher(.sha256)
    public let admins: [PrivateKey]
    public let validators: [PrivateKey]
    public let outsider: PrivateKey
    public let genesis: Genesis
    public let store = MemoryStore()
    public let state: StateStore
    public let executor: Executor
    public private(set) var root: Hash
    public private(set) var height: UInt64 = 0
    var nonces: [PublicKey: UInt64] = [:]

    public init(organisations: Int = 4) throws {
        let admins = try (0..<organisations).map { try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(20 + $0), count: 32)) }
        let validators = try (0..<organisations).map { try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(40 + $0), count: 32)) }
        let outsider = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 99, count: 32))
        self.admins = admins
        self.validators = validators
        self.outsider = outsider
        genesis = Genesis(
            chainId: "gov", hashSuite: .sha256, signatureSchemes: [.ed25519],
            organisations: (0..<organisations).map { index in
                .init(
                    id: "org\(index)", name: "Organisation \(index)", admins: [admins[index].publicKey],
                    members: index == 0 ? [outsider.publicKey] : [], validators: [.init(publicKey: validators[index].publicKey, power: 1)],
                    tlsAuthority: "-----BEGIN CERTIFICATE-----\nca\(index)\n-----END CERTIFICATE-----\n")
            },
            allocations: [], timestampMilliseconds: 0)
        state = StateStore(store: store, hasher: hasher)
        executor = Executor(chainId: "gov", hasher: hasher)
        let (root, batch) = try state.stage(root: StateTree.emptyRoot, changes: Executor.genesisChanges(genesis, hasher: hasher), staleAt: nil)
        try store.write(batch, durable: false)
        self.root = root
    }

    /// Executes one block of calls, each signed by its key, and commits its state.
    public func block(_ calls: [(PrivateKey, Call)], gasLimit: UInt64 = 10_000_000) throws -> [Receipt] {
        try execute(sign(calls, gasLimit: gasLimit))
    }

    /// Signs calls with each key's next nonces (in order), without executing them.
    public func sign(_ calls: [(PrivateKey, Call)], gasLimit: UInt64 = 10_000_000) throws -> [VerifiedTransaction] {
        try calls.map { key, call in
            let nonce = nonces[key.publicKey, default: 0]
            nonces[key.publicKey] = nonce + 1
            let (signed, _) = try TransactionBuilder(chainId: "gov", hashSuite: .sha256, key: key)
                .sign(call: call, nonce: nonce, expiryHeight: 1_000_000, gasLimit: gasLimit)
            return try VerifiedTransaction.verify(signed, hasher: hasher, verifier: SignatureVerifiers())
        }
    }

    /// Executes signed transactions as the next block and commits its state.
    public func execute(_ transactions: [VerifiedTransaction]) throws -> [Receipt] {
        height += 1
        let execution = executor.execute(transactions, height: height, base: state)
        let (root, batch) = try state.stage(root: self.root, changes: execution.changes, staleAt: height)
        try store.write(batch, durable: false)
        self.root = root
        return execution.receipts
    }

    public func address(_ key: PrivateKey) -> Address { Address(of: key.publicKey, using: hasher) }

    public func call(_ key: PrivateKey, _ call: Call, gasLimit: UInt64 = 10_000_000) throws -> Receipt {
        try block([(key, call)], gasLimit: gasLimit)[0]
    }
}
