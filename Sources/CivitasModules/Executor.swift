import CivitasCore
import CivitasCrypto
import CivitasState
import CivitasVM

/// The state as a block sees it while executing: the committed state plus the writes
/// of the block's transactions so far.
final class BlockOverlay: StateReader {
    private let base: any StateReader
    /// Keyed as one block of bytes: a state key's own hashing costs a call per byte.
    private(set) var writes: [ByteKey: [UInt8]?] = [:]

    init(base: any StateReader) { self.base = base }

    func value(for key: [UInt8]) throws(ExecutionError) -> [UInt8]? {
        if let pending = writes[ByteKey(key)] { return pending }
        return try base.value(for: key)
    }

    func set(_ key: [UInt8], _ value: [UInt8]?) { writes[ByteKey(key)] = .some(value) }

    func merge(_ other: [ByteKey: [UInt8]?]) {
        for (key, value) in other { writes[key] = .some(value) }
    }
}

/// The result of executing a block's transactions in order.
public struct BlockExecution: Sendable {
    public var receipts: [Receipt]
    /// State changes to apply, one per key (the last write of the block).
    public var changes: [StateTree.Change]
    public var gasUsed: UInt64
}

/// Runs transactions against the state: deterministic, metered, and a failed call
/// leaves a failed receipt and no state change except the sender's nonce.
public struct Executor: Sendable {
    public let chainId: String
    public let hasher: ChainHasher
    private let modules: [String: any SystemModule]

    public init(
        chainId: String, hasher: ChainHasher,
        modules: [any SystemModule] = [KVModule(), TokenModule(), GovernanceModule(), ContractModule(), ChainModule()]
    ) {
        self.chainId = chainId
        self.hasher = hasher
        self.modules = Dictionary(uniqueKeysWithValues: modules.map { ($0.name, $0) })
    }

    public var moduleNames: [String] { modules.keys.sorted() }

    /// The state of block 0: organisation membership of every genesis key, and balances.
    public static func genesisChanges(_ genesis: Genesis, hasher: ChainHasher) -> [StateTree.Change] {
        var changes: [StateTree.Change] = []
        for org in genesis.organisations {
            for key in org.admins + org.members + org.validators.map(\.publicKey) {
                let address = Address(of: key, using: hasher)
                changes.append(.init(key: StateKeys.organisation(address), value: Array(org.id.utf8)))
            }
        }
        var balances: [Address: UInt64] = [:]
        var supply: UInt64 = 0
        for allocation in genesis.allocations {
            balances[Address(of: allocation.account, using: hasher), default: 0] += allocation.amount
            supply += allocation.amount
        }
        for (address, amount) in balances.sorted(by: { $0.key < $1.key }) {
            changes.append(.init(key: StateKeys.balance(address), value: StateKeys.encode(amount)))
        }
        changes.append(.init(key: StateKeys.supply, value: StateKeys.encode(supply)))
        for org in genesis.organisations {
            for admin in org.admins {
                changes.append(.init(key: StateKeys.admin(Address(of: admin, using: hasher)), value: Array(org.id.utf8)))
            }
            if let authority = org.tlsAuthority {
                changes.append(.init(key: StateKeys.tlsAuthority(org.id), value: Array(authority.utf8)))
            }
        }
        changes.append(.init(key: StateKeys.organisations, value: GovernanceModule.encode(organisations: genesis.organisations.map(\.id))))
        // validate() has checked the set; a genesis without one never reaches here.
        if let validators = try? genesis.validatorSet() {
            changes.append(.init(key: ValidatorSet.stateKey, value: validators.canonicalBytes))
        }
        return changes
    }

    public func execute(_ transactions: [VerifiedTransaction], height: UInt64, base: any StateReader) -> BlockExecution {
        let overlay = BlockOverlay(base: base)
        var receipts: [Receipt] = []
        receipts.reserveCapacity(transactions.count)
        var gasUsed: UInt64 = 0
        for transaction in transactions {
            let receipt = execute(transaction, height: height, overlay: overlay)
            gasUsed += receipt.gasUsed
            receipts.append(receipt)
        }
        let changes = overlay.writes.map { StateTree.Change(key: $0.key.bytes, value: $0.value) }
        return BlockExecution(receipts: receipts, changes: changes, gasUsed: gasUsed)
    }

    private func execute(_ transaction: VerifiedTransaction, height: UInt64, overlay: BlockOverlay) -> Receipt {
        let body = transaction.body
        func failed(_ error: ExecutionError, gas: UInt64) -> Receipt {
            Receipt(transactionId: transaction.id, status: .failure(code: error.code, message: error.message), gasUsed: gas, events: [])
        }
        // Admission checks again: a block may come from another proposer whose mempool
        // saw a different state. These failures consume nothing, not even the nonce.
        let sender = Address(of: body.sender, using: hasher)
        let nonceKey = StateKeys.nonce(sender)
        let expected: UInt64
        do throws(ExecutionError) {
            guard body.chainId == chainId else { throw ExecutionError("tx.wrong_chain", "transaction for chain \(body.chainId)") }
            guard body.expiryHeight >= height else { throw ExecutionError("tx.expired", "expired at height \(body.expiryHeight)") }
            guard try overlay.value(for: StateKeys.organisation(sender)) != nil else {
                throw ExecutionError("tx.unknown_sender", "sender belongs to no organisation")
            }
            expected = try StateKeys.decodeU64(try overlay.value(for: nonceKey))
            guard body.nonce == expected else {
                throw ExecutionError("tx.bad_nonce", "nonce \(body.nonce), account expects \(expected)")
            }
        } catch {
            return failed(error, gas: 0)
        }
        overlay.set(nonceKey, StateKeys.encode(expected + 1))

        let context = TransactionContext(
            sender: body.sender, height: height, gasLimit: body.gasLimit, hasher: hasher, base: overlay)
        context.moduleCall = dispatcher(context)
        do throws(ExecutionError) {
            try context.charge(GasSchedule.intrinsic(transactionBytes: transaction.encodedSize))
            _ = try dispatch(body.call.module, body.call.method, body.call.arguments, context: context)
        } catch {
            return failed(error, gas: context.gas.used)
        }
        overlay.merge(context.writes)
        return Receipt(transactionId: transaction.id, status: .success, gasUsed: context.gas.used, events: context.events)
    }

    private func dispatch(_ module: String, _ method: String, _ arguments: [UInt8], context: TransactionContext) throws(ExecutionError)
        -> [UInt8]
    {
        guard let module = modules[module] else { throw ExecutionError("call.unknown_module", "no module named \(module)") }
        return try module.call(method: method, arguments: arguments, context: context)
    }

    private func dispatcher(_ context: TransactionContext) -> (String, String, [UInt8]) throws(ExecutionError) -> [UInt8] {
        // Unowned: the context holds this closure, and the closure must not keep it alive.
        { [unowned context] (module: String, method: String, arguments: [UInt8]) throws(ExecutionError) -> [UInt8] in
            try dispatch(module, method, arguments, context: context)
        }
    }

    /// Runs a contract method read-only on `base` (a committed state): its writes are
    /// discarded, its output, events, logs and gas reported.
    public func query(
        contract: Address, method: String, arguments: [UInt8], caller: Address, gasLimit: UInt64, height: UInt64,
        base: any StateReader
    ) -> ContractQueryResult {
        let context = TransactionContext(sender: caller, height: height, gasLimit: gasLimit, hasher: hasher, base: base)
        context.moduleCall = dispatcher(context)
        var logs: [String] = []
        context.log = { _, line in if logs.count < ContractQueryResult.logsMax { logs.append(line) } }
        let arguments = ContractModule.callArguments(contract: contract, method: method, arguments: arguments)
        do {
            let output = try dispatch("contract", "call", arguments, context: context)
            return ContractQueryResult(output: output, error: nil, gasUsed: context.gas.used, events: context.events, logs: logs)
        } catch {
            return ContractQueryResult(output: [], error: error, gasUsed: context.gas.used, events: [], logs: logs)
        }
    }
}

/// What a read-only contract call gave.
public struct ContractQueryResult: Sendable, Equatable {
    public static let logsMax = 256
    public var output: [UInt8]
    public var error: ExecutionError?
    public var gasUsed: UInt64
    public var events: [Event]
    public var logs: [String]
}
