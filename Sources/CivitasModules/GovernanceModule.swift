import CivitasCore
import CivitasVM

/// A change to the validator set that organisation admins propose and approve.
public enum ValidatorChange: Hashable, Sendable {
    /// Adds a validator to `organisation`; `newOrganisation` registers that
    /// organisation first (its admins and TLS CA) when it is not yet a member.
    case add(Addition)
    case remove(PublicKey)

    public struct Addition: Hashable, Sendable {
        public var validator: PublicKey
        public var power: UInt64
        public var organisation: String
        /// `host:port` of the validator's peer endpoint, which the other nodes dial.
        public var address: String
        public var newOrganisation: NewOrganisation?

        public init(validator: PublicKey, power: UInt64, organisation: String, address: String, newOrganisation: NewOrganisation? = nil) {
            self.validator = validator
            self.power = power
            self.organisation = organisation
            self.address = address
            self.newOrganisation = newOrganisation
        }
    }

    public struct NewOrganisation: Hashable, Sendable {
        public var name: String
        public var admins: [PublicKey]
        public var tlsAuthority: String

        public init(name: String, admins: [PublicKey], tlsAuthority: String) {
            self.name = name
            self.admins = admins
            self.tlsAuthority = tlsAuthority
        }
    }

    public static let addressBytesMax = 255
    public static let adminsMax = 64
}

extension ValidatorChange: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .add(let addition):
            writer.u8(1)
            writer.encode(addition.validator)
            writer.u64(addition.power)
            writer.string(addition.organisation, max: ProtocolLimits.organisationIdBytesMax)
            writer.string(addition.address, max: Self.addressBytesMax)
            if let org = addition.newOrganisation {
                writer.u8(1)
                writer.string(org.name, max: 256)
                writer.list(org.admins, max: Self.adminsMax) { $0.encode($1) }
                writer.string(org.tlsAuthority, max: Genesis.tlsAuthorityBytesMax)
            } else {
                writer.u8(0)
            }
        case .remove(let key):
            writer.u8(2)
            writer.encode(key)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        switch try reader.u8("change kind") {
        case 1:
            let validator = try reader.decode(PublicKey.self)
            let power = try reader.u64("power")
            let organisation = try reader.string("organisation", max: ProtocolLimits.organisationIdBytesMax)
            let address = try reader.string("address", max: Self.addressBytesMax)
            var newOrganisation: NewOrganisation?
            switch try reader.u8("new organisation") {
            case 0: break
            case 1:
                newOrganisation = NewOrganisation(
                    name: try reader.string("organisation name", max: 256),
                    admins: try reader.list("admins", max: Self.adminsMax) { (reader: inout CanonicalReader) throws(CodecError) in
                        try reader.decode(PublicKey.self)
                    },
                    tlsAuthority: try reader.string("tls authority", max: Genesis.tlsAuthorityBytesMax))
            case let other: throw .invalid(field: "new organisation", reason: "flag \(other)")
            }
            self = .add(Addition(validator: validator, power: power, organisation: organisation, address: address, newOrganisation: newOrganisation))
        case 2:
            self = .remove(try reader.decode(PublicKey.self))
        case let other:
            throw .invalid(field: "change kind", reason: "unknown kind \(other)")
        }
    }
}

/// A change waiting for approvals.
public struct GovernanceProposal: Hashable, Sendable {
    public var change: ValidatorChange
    /// Organisations whose admins approved, in the order they did.
    public var approvals: [String]
    /// The last height at which an approval still counts.
    public var expiryHeight: UInt64
}

extension GovernanceProposal: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(change)
        writer.list(approvals, max: Genesis.organisationsMax) { $0.string($1, max: ProtocolLimits.organisationIdBytesMax) }
        writer.u64(expiryHeight)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        change = try reader.decode(ValidatorChange.self)
        approvals = try reader.list("approvals", max: Genesis.organisationsMax) { (reader: inout CanonicalReader) throws(CodecError) in
            try reader.string("organisation", max: ProtocolLimits.organisationIdBytesMax)
        }
        expiryHeight = try reader.u64("expiry height")
    }
}

/// `governance`: validator-set changes approved by more than two thirds of the
/// organisations, each through one of its admins.
///
/// Methods: `propose(change)` (counts as the proposer's organisation's approval),
/// `approve(id: 32 bytes)`. The id is the hash of the change's encoding. When approvals
/// pass the quorum, the new set is written under `gov/validators` with the next epoch
/// number; the block that does so is the last of its epoch (docs/consensus.md).
public struct GovernanceModule: SystemModule {
    /// Blocks a proposal stays open for approvals.
    public static let proposalLifetime: UInt64 = 10_000

    public init() {}
    public var name: String { "governance" }

    public static func proposeArguments(_ change: ValidatorChange) -> [UInt8] { change.canonicalBytes }

    public static func approveArguments(id: Hash) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 32)
        writer.hash(id)
        return writer.bytes
    }

    public static func proposalId(_ change: ValidatorChange, hasher: some HashFunction) -> Hash {
        hasher.hash(.governance, change.canonicalBytes)
    }

    /// More than two thirds of the organisations.
    public static func quorum(organisations: Int) -> Int { organisations * 2 / 3 + 1 }

    public func execute(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) {
        let organisation = try Self.adminOrganisation(context)
        switch method {
        case "propose":
            let change = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                try reader.decode(ValidatorChange.self)
            }
            _ = try nextSet(applying: change, context: context)
            let id = try context.hash(.governance, change.canonicalBytes)
            if let existing = try proposal(id, context), existing.expiryHeight >= context.height {
                throw ExecutionError("governance.duplicate", "proposal \(id) is already open")
            }
            let proposal = GovernanceProposal(
                change: change, approvals: [organisation], expiryHeight: context.height + Self.proposalLifetime)
            try context.emit(Event(module: name, name: "proposed", attributes: [.init("id", id.hex), .init("organisation", organisation)]))
            try record(proposal, id: id, context)
        case "approve":
            let id = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in try reader.hash("id") }
            guard var proposal = try proposal(id, context), proposal.expiryHeight >= context.height else {
                throw ExecutionError("governance.unknown_proposal", "no open proposal \(id)")
            }
            guard !proposal.approvals.contains(organisation) else {
                throw ExecutionError("governance.already_approved", "\(organisation) already approved proposal \(id)")
            }
            proposal.approvals.append(organisation)
            try context.emit(Event(module: name, name: "approved", attributes: [.init("id", id.hex), .init("organisation", organisation)]))
            try record(proposal, id: id, context)
        default:
            throw unknownMethod(method)
        }
    }

    private func record(_ proposal: GovernanceProposal, id: Hash, _ context: TransactionContext) throws(ExecutionError) {
        let organisations = try Self.organisations(context.get(StateKeys.organisations))
        guard proposal.approvals.count >= Self.quorum(organisations: organisations.count) else {
            return try context.set(StateKeys.proposal(id), proposal.canonicalBytes)
        }
        try apply(proposal.change, context: context)
        try context.set(StateKeys.proposal(id), nil)
    }

    static func adminOrganisation(_ context: TransactionContext) throws(ExecutionError) -> String {
        guard let bytes = try context.get(StateKeys.admin(context.caller)) else {
            throw ExecutionError("governance.not_admin", "the sender is no organisation's admin")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func proposal(_ id: Hash, _ context: TransactionContext) throws(ExecutionError) -> GovernanceProposal? {
        guard let bytes = try context.get(StateKeys.proposal(id)) else { return nil }
        do { return try GovernanceProposal(canonicalBytes: bytes) } catch {
            throw ExecutionError("state.corrupt", "governance proposal \(id): \(error)")
        }
    }

    /// The set after `change`, checked against the current one.
    private func nextSet(applying change: ValidatorChange, context: TransactionContext) throws(ExecutionError) -> ValidatorSet {
        let current = try Self.validatorSet(context.get(ValidatorSet.stateKey))
        let organisations = try Self.organisations(context.get(StateKeys.organisations))
        var validators = current.validators
        switch change {
        case .add(let addition):
            guard current.index(of: addition.validator) == nil else {
                throw ExecutionError("governance.invalid_change", "\(addition.validator) is already a validator")
            }
            guard addition.power > 0 else { throw ExecutionError("governance.invalid_change", "a validator needs power above zero") }
            let parts = addition.address.split(separator: ":")
            guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65_535).contains(port) else {
                throw ExecutionError("governance.invalid_change", "address must be host:port, not \(addition.address)")
            }
            let known = organisations.contains(addition.organisation)
            if let org = addition.newOrganisation {
                guard !known else { throw ExecutionError("governance.invalid_change", "organisation \(addition.organisation) already exists") }
                guard !addition.organisation.isEmpty, organisations.count < Genesis.organisationsMax else {
                    throw ExecutionError("governance.invalid_change", "organisation id is empty or the chain has \(Genesis.organisationsMax) organisations")
                }
                guard !org.admins.isEmpty, org.tlsAuthority.contains("-----BEGIN CERTIFICATE-----") else {
                    throw ExecutionError("governance.invalid_change", "a new organisation needs admins and a PEM TLS authority")
                }
                for admin in org.admins {
                    guard try context.get(StateKeys.organisation(Address(of: admin, using: context.hasher))) == nil else {
                        throw ExecutionError("governance.invalid_change", "admin \(admin) already belongs to an organisation")
                    }
                }
            } else if !known {
                throw ExecutionError("governance.invalid_change", "no organisation \(addition.organisation); describe it to add it")
            }
            if let owner = try context.get(StateKeys.organisation(Address(of: addition.validator, using: context.hasher))),
                owner != Array(addition.organisation.utf8)
            {
                throw ExecutionError("governance.invalid_change", "\(addition.validator) belongs to another organisation")
            }
            validators.append(Validator(organisation: addition.organisation, publicKey: addition.validator, power: addition.power))
        case .remove(let key):
            guard let index = current.index(of: key) else {
                throw ExecutionError("governance.invalid_change", "\(key) is not a validator")
            }
            validators.remove(at: Int(index))
            guard !validators.isEmpty else { throw ExecutionError("governance.invalid_change", "the last validator cannot be removed") }
        }
        do { return try ValidatorSet(epoch: current.epoch + 1, validators: validators) } catch {
            throw ExecutionError("governance.invalid_change", error.message)
        }
    }

    private func apply(_ change: ValidatorChange, context: TransactionContext) throws(ExecutionError) {
        // One change per epoch: the block that writes a set is the epoch's last, and the
        // empty blocks after it carry no transactions, so a second write can only come
        // from the same block.
        if let changed = try context.get(StateKeys.validatorsChangedAt), try StateKeys.decodeU64(changed) == context.height {
            throw ExecutionError("governance.change_pending", "this block already changes the validator set; approve again in a later block")
        }
        let next = try nextSet(applying: change, context: context)
        if case .add(let addition) = change {
            if let org = addition.newOrganisation {
                var organisations = try Self.organisations(context.get(StateKeys.organisations))
                organisations.append(addition.organisation)
                try context.set(StateKeys.organisations, Self.encode(organisations: organisations))
                try context.set(StateKeys.tlsAuthority(addition.organisation), Array(org.tlsAuthority.utf8))
                for admin in org.admins {
                    let address = Address(of: admin, using: context.hasher)
                    try context.set(StateKeys.organisation(address), Array(addition.organisation.utf8))
                    try context.set(StateKeys.admin(address), Array(addition.organisation.utf8))
                }
            }
            try context.set(StateKeys.organisation(Address(of: addition.validator, using: context.hasher)), Array(addition.organisation.utf8))
            try context.set(StateKeys.peerAddress(Address(of: addition.validator, using: context.hasher)), Array(addition.address.utf8))
        }
        try context.set(ValidatorSet.stateKey, next.canonicalBytes)
        try context.set(StateKeys.validatorsChangedAt, StateKeys.encode(context.height))
        try context.emit(
            Event(module: name, name: "validators_changed", attributes: [
                .init("epoch", String(next.epoch)), .init("validators", String(next.validators.count)),
                .init("effective_height", String(context.height + 1)),
            ]))
    }

    public static func validatorSet(_ bytes: [UInt8]?) throws(ExecutionError) -> ValidatorSet {
        guard let bytes else { throw ExecutionError("state.corrupt", "the state holds no validator set") }
        do { return try ValidatorSet(canonicalBytes: bytes) } catch {
            throw ExecutionError("state.corrupt", "validator set: \(error)")
        }
    }

    public static func organisations(_ bytes: [UInt8]?) throws(ExecutionError) -> [String] {
        guard let bytes else { return [] }
        var reader = CanonicalReader(bytes)
        do {
            let list = try reader.list("organisations", max: Genesis.organisationsMax) { (reader: inout CanonicalReader) throws(CodecError) in
                try reader.string("organisation", max: ProtocolLimits.organisationIdBytesMax)
            }
            try reader.finish()
            return list
        } catch {
            throw ExecutionError("state.corrupt", "organisation list: \(error)")
        }
    }

    public static func encode(organisations: [String]) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.list(organisations, max: Genesis.organisationsMax) { $0.string($1, max: ProtocolLimits.organisationIdBytesMax) }
        return writer.bytes
    }
}
