import CivitasCore
import CivitasVM

/// Who may replace a contract's code.
public enum UpgradePolicy: UInt8, Sendable, Codable, CaseIterable {
    /// The deployer (the contract's owner) alone.
    case owner = 0
    /// More than two thirds of the organisations, through their admins.
    case governance = 1
    /// Nobody: the code is final.
    case frozen = 2

    public var name: String {
        switch self {
        case .owner: "owner"
        case .governance: "governance"
        case .frozen: "frozen"
        }
    }

    public init?(name: String) {
        guard let policy = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = policy
    }
}

/// A deployed contract as the state records it under `contract/meta/<address>`.
public struct ContractRecord: CanonicalCodable, Sendable, Equatable {
    public var owner: Address
    public var policy: UpgradePolicy
    public var version: UInt64
    public var codeHash: Hash
    public var codeSize: UInt32
    public var deployedAt: UInt64
    public var upgradedAt: UInt64

    public func encode(to writer: inout CanonicalWriter) {
        writer.hash(owner.hash)
        writer.u8(policy.rawValue)
        writer.u64(version)
        writer.hash(codeHash)
        writer.u32(codeSize)
        writer.u64(deployedAt)
        writer.u64(upgradedAt)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        owner = Address(try reader.hash("owner"))
        let tag = try reader.u8("policy")
        guard let policy = UpgradePolicy(rawValue: tag) else { throw .unknownTag(field: "policy", tag: tag) }
        self.policy = policy
        version = try reader.u64("version")
        codeHash = try reader.hash("code hash")
        codeSize = try reader.u32("code size")
        deployedAt = try reader.u64("deployed at")
        upgradedAt = try reader.u64("upgraded at")
    }

    public init(
        owner: Address, policy: UpgradePolicy, version: UInt64, codeHash: Hash, codeSize: UInt32, deployedAt: UInt64,
        upgradedAt: UInt64
    ) {
        self.owner = owner
        self.policy = policy
        self.version = version
        self.codeHash = codeHash
        self.codeSize = codeSize
        self.deployedAt = deployedAt
        self.upgradedAt = upgradedAt
    }
}

/// One version of a contract, kept forever under `contract/version/<address><n>`.
public struct ContractVersion: CanonicalCodable, Sendable, Equatable {
    public var codeHash: Hash
    public var height: UInt64

    public init(codeHash: Hash, height: UInt64) {
        self.codeHash = codeHash
        self.height = height
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.hash(codeHash)
        writer.u64(height)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        codeHash = try reader.hash("code hash")
        height = try reader.u64("height")
    }
}

/// An open proposal to upgrade a governance-policy contract.
struct UpgradeProposal: CanonicalCodable, Equatable {
    var codeHash: Hash
    var codeSize: UInt32
    var approvals: [String]
    var expiryHeight: UInt64

    func encode(to writer: inout CanonicalWriter) {
        writer.hash(codeHash)
        writer.u32(codeSize)
        writer.list(approvals, max: Genesis.organisationsMax) { $0.string($1, max: ProtocolLimits.organisationIdBytesMax) }
        writer.u64(expiryHeight)
    }

    init(codeHash: Hash, codeSize: UInt32, approvals: [String], expiryHeight: UInt64) {
        self.codeHash = codeHash
        self.codeSize = codeSize
        self.approvals = approvals
        self.expiryHeight = expiryHeight
    }

    init(from reader: inout CanonicalReader) throws(CodecError) {
        codeHash = try reader.hash("code hash")
        codeSize = try reader.u32("code size")
        approvals = try reader.list("approvals", max: Genesis.organisationsMax) { (reader: inout CanonicalReader) throws(CodecError) in
            try reader.string("organisation", max: ProtocolLimits.organisationIdBytesMax)
        }
        expiryHeight = try reader.u64("expiry height")
    }
}

/// `contract`: deploys, calls and upgrades WebAssembly contracts.
///
/// Methods (arguments in the canonical encoding):
/// - `deploy(code: bytes≤96 KiB, policy: u8, init: optional bytes)`: validates the code,
///   records version 1, and runs the method `init` with the given arguments if present.
/// - `call(address: hash, method: string≤64, arguments: bytes)`: runs a method.
/// - `upgrade(address: hash, code: bytes)`: the owner replaces the code (policy owner);
///   an admin proposes it (policy governance).
/// - `approve_upgrade(address: hash, code_hash: hash)`: an admin approves a proposal; the
///   code changes when more than two thirds of the organisations approved.
public struct ContractModule: SystemModule {
    public let runtime: ContractRuntime
    public static let upgradeLifetime: UInt64 = 10_000

    public init(runtime: ContractRuntime = ContractRuntime()) { self.runtime = runtime }
    public var name: String { "contract" }

    // MARK: Arguments

    public static func deployArguments(code: [UInt8], policy: UpgradePolicy, initArguments: [UInt8]?) -> [UInt8] {
        var writer = CanonicalWriter(capacity: code.count + 64)
        writer.byteString(code, max: ContractLimits.codeBytesMax)
        writer.u8(policy.rawValue)
        writer.bool(initArguments != nil)
        if let initArguments { writer.byteString(initArguments, max: ProtocolLimits.callArgumentsBytesMax) }
        return writer.bytes
    }

    public static func callArguments(contract: Address, method: String, arguments: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter(capacity: arguments.count + 128)
        writer.hash(contract.hash)
        writer.string(method, max: ContractLimits.methodBytesMax)
        writer.byteString(arguments, max: ProtocolLimits.callArgumentsBytesMax)
        return writer.bytes
    }

    public static func upgradeArguments(contract: Address, code: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter(capacity: code.count + 64)
        writer.hash(contract.hash)
        writer.byteString(code, max: ContractLimits.codeBytesMax)
        return writer.bytes
    }

    public static func approveUpgradeArguments(contract: Address, codeHash: Hash) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 64)
        writer.hash(contract.hash)
        writer.hash(codeHash)
        return writer.bytes
    }

    /// The address the `n`th contract deployed by `deployer` gets (n from 0).
    public static func address(deployer: Address, sequence: UInt64, hasher: some HashFunction) -> Address {
        var writer = CanonicalWriter(capacity: 40)
        writer.hash(deployer.hash)
        writer.u64(sequence)
        return Address(hasher.hash(.contractAddress, writer.bytes))
    }

    public static func codeHash(_ code: [UInt8], hasher: some HashFunction) -> Hash { hasher.hash(.contractCode, code) }

    // MARK: Execution

    public func execute(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) {
        _ = try call(method: method, arguments: arguments, context: context)
    }

    public func call(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) -> [UInt8] {
        switch method {
        case "deploy":
            let (code, policyTag, initArguments) = try decodeArguments(arguments) {
                (reader: inout CanonicalReader) throws(CodecError) in
                let code = try reader.byteString("code", max: ContractLimits.codeBytesMax)
                let policy = try reader.u8("policy")
                let initArguments =
                    try reader.bool("has init") ? try reader.byteString("init", max: ProtocolLimits.callArgumentsBytesMax) : nil
                return (code, policy, initArguments)
            }
            guard let policy = UpgradePolicy(rawValue: policyTag) else {
                throw .invalidArguments("contract: unknown upgrade policy \(policyTag)")
            }
            return try deploy(code: code, policy: policy, initArguments: initArguments, context: context)
        case "call":
            let (contract, target, input) = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                (
                    Address(try reader.hash("address")), try reader.string("method", max: ContractLimits.methodBytesMax),
                    try reader.byteString("arguments", max: ProtocolLimits.callArgumentsBytesMax)
                )
            }
            return try invoke(contract, method: target, arguments: input, context: context)
        case "upgrade":
            let (contract, code) = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                (Address(try reader.hash("address")), try reader.byteString("code", max: ContractLimits.codeBytesMax))
            }
            try upgrade(contract, code: code, context: context)
            return []
        case "approve_upgrade":
            let (contract, codeHash) = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                (Address(try reader.hash("address")), try reader.hash("code hash"))
            }
            try approveUpgrade(contract, codeHash: codeHash, context: context)
            return []
        default:
            throw unknownMethod(method)
        }
    }

    private func deploy(
        code: [UInt8], policy: UpgradePolicy, initArguments: [UInt8]?, context: TransactionContext
    ) throws(ExecutionError) -> [UInt8] {
        let codeHash = try store(code, context: context)
        let deployer = context.caller
        let counterKey = ContractKeys.deployCounter(deployer)
        let sequence = try StateKeys.decodeU64(try context.get(counterKey))
        try context.set(counterKey, StateKeys.encode(sequence + 1))
        let address = Self.address(deployer: deployer, sequence: sequence, hasher: context.hasher)
        let record = ContractRecord(
            owner: deployer, policy: policy, version: 1, codeHash: codeHash, codeSize: UInt32(code.count),
            deployedAt: context.height, upgradedAt: context.height)
        try context.set(ContractKeys.meta(address), record.canonicalBytes)
        try context.set(ContractKeys.version(address, 1), ContractVersion(codeHash: codeHash, height: context.height).canonicalBytes)
        try context.emit(
            Event(module: name, name: "deployed", attributes: [
                .init("address", address.description), .init("code_hash", codeHash.hex), .init("owner", deployer.description),
                .init("policy", policy.name),
            ]))
        if let initArguments {
            _ = try invoke(address, method: "init", arguments: initArguments, context: context)
        }
        return ContractValue.encode([.address(address)])
    }

    /// Validates `code` and writes it (once per distinct code) in chunks.
    private func store(_ code: [UInt8], context: TransactionContext) throws(ExecutionError) -> Hash {
        try context.charge(ContractGas.deployPerByte * UInt64(code.count))
        try ContractValidator.validate(code)
        let codeHash = try context.hash(.contractCode, code)
        guard try context.peek(ContractKeys.codeChunk(codeHash, 0)) == nil else { return codeHash }
        var index = 0
        var start = 0
        repeat {
            let end = min(start + ContractKeys.codeChunkBytes, code.count)
            try context.set(ContractKeys.codeChunk(codeHash, index), Array(code[start..<end]))
            index += 1
            start = end
        } while start < code.count
        return codeHash
    }

    public static func loadCode(_ codeHash: Hash, size: Int, read: ([UInt8]) throws(ExecutionError) -> [UInt8]?) throws(ExecutionError)
        -> [UInt8]
    {
        var code: [UInt8] = []
        code.reserveCapacity(size)
        var index = 0
        while code.count < size {
            guard let chunk = try read(ContractKeys.codeChunk(codeHash, index)), !chunk.isEmpty else {
                throw ExecutionError("state.corrupt", "code \(codeHash) is missing chunk \(index)")
            }
            code += chunk
            index += 1
        }
        guard code.count == size else { throw ExecutionError("state.corrupt", "code \(codeHash) has \(code.count) bytes, not \(size)") }
        return code
    }

    public static func record(_ contract: Address, read: ([UInt8]) throws(ExecutionError) -> [UInt8]?) throws(ExecutionError)
        -> ContractRecord
    {
        guard let bytes = try read(ContractKeys.meta(contract)) else {
            throw ExecutionError("contract.not_found", "no contract at \(contract)")
        }
        do { return try ContractRecord(canonicalBytes: bytes) } catch {
            throw ExecutionError("state.corrupt", "contract record \(contract): \(error)")
        }
    }

    /// The contract's record as the running transaction sees it (a charged read).
    private func storedRecord(_ contract: Address, _ context: TransactionContext) throws(ExecutionError) -> ContractRecord {
        try Self.record(contract) { (key: [UInt8]) throws(ExecutionError) in try context.get(key) }
    }

    func invoke(_ contract: Address, method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError)
        -> [UInt8]
    {
        let record = try storedRecord(contract, context)
        let services = ContractServices(
            loadCode: { (hash: Hash) throws(ExecutionError) -> [UInt8] in
                try Self.loadCode(hash, size: Int(record.codeSize)) { (key: [UInt8]) throws(ExecutionError) in try context.peek(key) }
            },
            callModule: { (module: String, method: String, arguments: [UInt8]) throws(ExecutionError) -> [UInt8] in
                guard let dispatch = context.moduleCall else {
                    throw ExecutionError("call.unknown_module", "no module calls in this context")
                }
                return try dispatch(module, method, arguments)
            },
            log: context.log)
        return try runtime.invoke(
            ContractInvocation(
                contract: contract, codeHash: record.codeHash, codeSize: Int(record.codeSize), method: method, arguments: arguments),
            context: context, services: services)
    }

    private func upgrade(_ contract: Address, code: [UInt8], context: TransactionContext) throws(ExecutionError) {
        var record = try storedRecord(contract, context)
        switch record.policy {
        case .frozen:
            throw ExecutionError("contract.frozen", "contract \(contract) cannot be upgraded")
        case .owner:
            guard context.caller == record.owner else {
                throw ExecutionError("contract.not_owner", "only the owner \(record.owner) may upgrade \(contract)")
            }
            let codeHash = try store(code, context: context)
            try apply(&record, contract: contract, codeHash: codeHash, codeSize: UInt32(code.count), context: context)
        case .governance:
            let organisation = try GovernanceModule.adminOrganisation(context)
            if let open = try proposal(contract, context), open.expiryHeight >= context.height {
                throw ExecutionError("contract.upgrade_pending", "an upgrade of \(contract) to \(open.codeHash) is open until \(open.expiryHeight)")
            }
            let codeHash = try store(code, context: context)
            let proposal = UpgradeProposal(
                codeHash: codeHash, codeSize: UInt32(code.count), approvals: [organisation],
                expiryHeight: context.height + Self.upgradeLifetime)
            try context.emit(
                Event(module: name, name: "upgrade_proposed", attributes: [
                    .init("address", contract.description), .init("code_hash", codeHash.hex), .init("organisation", organisation),
                ]))
            try decide(proposal, record: &record, contract: contract, context: context)
        }
    }

    private func approveUpgrade(_ contract: Address, codeHash: Hash, context: TransactionContext) throws(ExecutionError) {
        var record = try storedRecord(contract, context)
        let organisation = try GovernanceModule.adminOrganisation(context)
        guard var proposal = try proposal(contract, context), proposal.expiryHeight >= context.height, proposal.codeHash == codeHash
        else { throw ExecutionError("contract.unknown_upgrade", "no open upgrade of \(contract) to \(codeHash)") }
        guard !proposal.approvals.contains(organisation) else {
            throw ExecutionError("contract.already_approved", "\(organisation) already approved this upgrade")
        }
        proposal.approvals.append(organisation)
        try context.emit(
            Event(module: name, name: "upgrade_approved", attributes: [
                .init("address", contract.description), .init("code_hash", codeHash.hex), .init("organisation", organisation),
            ]))
        try decide(proposal, record: &record, contract: contract, context: context)
    }

    private func decide(
        _ proposal: UpgradeProposal, record: inout ContractRecord, contract: Address, context: TransactionContext
    ) throws(ExecutionError) {
        let key = ContractKeys.upgradeProposal(contract)
        let organisations = try GovernanceModule.organisations(context.get(StateKeys.organisations))
        guard proposal.approvals.count >= GovernanceModule.quorum(organisations: organisations.count) else {
            return try context.set(key, proposal.canonicalBytes)
        }
        try context.set(key, nil)
        try apply(&record, contract: contract, codeHash: proposal.codeHash, codeSize: proposal.codeSize, context: context)
    }

    private func proposal(_ contract: Address, _ context: TransactionContext) throws(ExecutionError) -> UpgradeProposal? {
        guard let bytes = try context.get(ContractKeys.upgradeProposal(contract)) else { return nil }
        do { return try UpgradeProposal(canonicalBytes: bytes) } catch {
            throw ExecutionError("state.corrupt", "upgrade proposal of \(contract): \(error)")
        }
    }

    private func apply(
        _ record: inout ContractRecord, contract: Address, codeHash: Hash, codeSize: UInt32, context: TransactionContext
    ) throws(ExecutionError) {
        record.version += 1
        record.codeHash = codeHash
        record.codeSize = codeSize
        record.upgradedAt = context.height
        try context.set(ContractKeys.meta(contract), record.canonicalBytes)
        try context.set(
            ContractKeys.version(contract, record.version), ContractVersion(codeHash: codeHash, height: context.height).canonicalBytes)
        try context.emit(
            Event(module: name, name: "upgraded", attributes: [
                .init("address", contract.description), .init("code_hash", codeHash.hex), .init("version", String(record.version)),
            ]))
    }
}
