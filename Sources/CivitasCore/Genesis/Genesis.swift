import Foundation

/// The founding document of a chain: its id, cryptography, organisations and their
/// keys, initial balances and consensus parameters. Every node of a chain holds the
/// same file; its hash is the parent of block 0.
public struct Genesis: Hashable, Sendable {
    public var chainId: String
    public var hashSuite: HashSuiteID
    public var signatureSchemes: [SignatureScheme]
    public var organisations: [Organisation]
    public var allocations: [Allocation]
    public var consensus: ConsensusParameters
    public var timestampMilliseconds: UInt64

    public struct Organisation: Hashable, Sendable, Codable {
        /// Short stable name (`finance-bureau`); appears in certificates and events.
        public var id: String
        public var name: String
        /// Keys that sign governance on the organisation's behalf.
        public var admins: [PublicKey]
        /// Identities that may send transactions as this organisation's members.
        public var members: [PublicKey]
        public var validators: [ValidatorEntry]
        /// The organisation's CA certificate (PEM): its nodes' TLS certificates must be
        /// issued by it. Required when the chain has more than one validator.
        public var tlsAuthority: String?

        public init(
            id: String, name: String, admins: [PublicKey], members: [PublicKey], validators: [ValidatorEntry],
            tlsAuthority: String? = nil
        ) {
            self.id = id
            self.name = name
            self.admins = admins
            self.members = members
            self.validators = validators
            self.tlsAuthority = tlsAuthority
        }
    }

    public static let tlsAuthorityBytesMax = 16 * 1024

    public struct ValidatorEntry: Hashable, Sendable, Codable {
        public var publicKey: PublicKey
        public var power: UInt64
        public init(publicKey: PublicKey, power: UInt64) {
            self.publicKey = publicKey
            self.power = power
        }
    }

    public struct Allocation: Hashable, Sendable, Codable {
        public var account: PublicKey
        public var amount: UInt64
        public init(account: PublicKey, amount: UInt64) {
            self.account = account
            self.amount = amount
        }
    }

    public struct ConsensusParameters: Hashable, Sendable, Codable {
        /// How long a proposer waits to fill a block before proposing what it has.
        public var blockIntervalMilliseconds: UInt64
        public var blockTransactionsMax: UInt32
        public var blockGasMax: UInt64

        public init(blockIntervalMilliseconds: UInt64 = 200, blockTransactionsMax: UInt32 = 5_000, blockGasMax: UInt64 = 1_000_000_000) {
            self.blockIntervalMilliseconds = blockIntervalMilliseconds
            self.blockTransactionsMax = blockTransactionsMax
            self.blockGasMax = blockGasMax
        }
    }

    public init(
        chainId: String, hashSuite: HashSuiteID, signatureSchemes: [SignatureScheme], organisations: [Organisation],
        allocations: [Allocation], consensus: ConsensusParameters = .init(), timestampMilliseconds: UInt64
    ) {
        self.chainId = chainId
        self.hashSuite = hashSuite
        self.signatureSchemes = signatureSchemes
        self.organisations = organisations
        self.allocations = allocations
        self.consensus = consensus
        self.timestampMilliseconds = timestampMilliseconds
    }

    /// The epoch-0 validators, in the order organisations and their validators appear.
    public func validatorSet() throws(CertificateError) -> ValidatorSet {
        try ValidatorSet(
            epoch: 0,
            validators: organisations.flatMap { org in
                org.validators.map { Validator(organisation: org.id, publicKey: $0.publicKey, power: $0.power) }
            })
    }

    /// The organisation an identity belongs to, as admin, member or validator.
    public func organisation(of key: PublicKey) -> Organisation? {
        organisations.first { org in
            org.admins.contains(key) || org.members.contains(key) || org.validators.contains { $0.publicKey == key }
        }
    }

    public func hash(using hasher: some HashFunction) -> Hash {
        hasher.hash(.genesis, canonicalBytes)
    }
}

public struct GenesisError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var code: String { "genesis.invalid" }
    public var description: String { "invalid genesis: \(message)" }
}

extension Genesis {
    public static let organisationsMax = 64
    public static let keysPerOrganisationMax = 1_000
    public static let allocationsMax = 100_000

    /// Checks what JSON decoding cannot: limits, uniqueness, accepted schemes.
    public func validate() throws(GenesisError) {
        guard !chainId.isEmpty, chainId.utf8.count <= ProtocolLimits.chainIdBytesMax,
            chainId.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else { throw GenesisError("chain id must be 1–64 ASCII letters, digits, '-', '_' or '.'") }
        guard !signatureSchemes.isEmpty else { throw GenesisError("signatureSchemes is empty") }
        guard Set(signatureSchemes).count == signatureSchemes.count else { throw GenesisError("signatureSchemes lists a scheme twice") }
        guard !organisations.isEmpty, organisations.count <= Self.organisationsMax else {
            throw GenesisError("a chain has 1 to \(Self.organisationsMax) organisations")
        }
        guard Set(organisations.map(\.id)).count == organisations.count else { throw GenesisError("two organisations share an id") }
        var seen = Set<PublicKey>()
        for org in organisations {
            guard !org.id.isEmpty, org.id.utf8.count <= 64 else { throw GenesisError("organisation id must be 1–64 bytes") }
            guard !org.admins.isEmpty else { throw GenesisError("organisation \(org.id) has no admin") }
            let keys = org.admins + org.members + org.validators.map(\.publicKey)
            guard keys.count <= Self.keysPerOrganisationMax else { throw GenesisError("organisation \(org.id) lists too many keys") }
            for key in keys {
                guard signatureSchemes.contains(key.scheme) else {
                    throw GenesisError("organisation \(org.id) uses \(key.scheme), which the chain does not accept")
                }
                guard seen.insert(key).inserted else { throw GenesisError("key \(key) appears twice") }
            }
        }
        do { _ = try validatorSet() } catch { throw GenesisError(error.message) }
        let validatorCount = organisations.reduce(0) { $0 + $1.validators.count }
        for org in organisations {
            if let authority = org.tlsAuthority {
                guard authority.utf8.count <= Self.tlsAuthorityBytesMax, authority.contains("-----BEGIN CERTIFICATE-----") else {
                    throw GenesisError("organisation \(org.id): tlsAuthority must be one PEM certificate of at most 16 KiB")
                }
            } else if validatorCount > 1 && !org.validators.isEmpty {
                throw GenesisError("organisation \(org.id) runs validators but names no tlsAuthority; nodes of a multi-validator chain authenticate with TLS certificates from it")
            }
        }
        guard allocations.count <= Self.allocationsMax else { throw GenesisError("too many allocations") }
        var total: UInt64 = 0
        for allocation in allocations {
            guard signatureSchemes.contains(allocation.account.scheme) else {
                throw GenesisError("allocation to a \(allocation.account.scheme) key, which the chain does not accept")
            }
            let (sum, overflow) = total.addingReportingOverflow(allocation.amount)
            guard !overflow else { throw GenesisError("allocations overflow a 64-bit supply") }
            total = sum
        }
        guard consensus.blockTransactionsMax >= 1, consensus.blockTransactionsMax <= ProtocolLimits.blockTransactionsMax else {
            throw GenesisError("consensus.blockTransactionsMax must be 1–\(ProtocolLimits.blockTransactionsMax)")
        }
        guard consensus.blockIntervalMilliseconds >= 1, consensus.blockIntervalMilliseconds <= 60_000 else {
            throw GenesisError("consensus.blockIntervalMilliseconds must be 1–60000")
        }
    }
}

extension Genesis: CanonicalEncodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.string(chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.u8(hashSuite.rawValue)
        writer.list(signatureSchemes, max: SignatureScheme.allCases.count) { $0.u8($1.rawValue) }
        writer.list(organisations, max: Self.organisationsMax) { writer, org in
            writer.string(org.id, max: 64)
            writer.string(org.name, max: 256)
            writer.list(org.admins, max: Self.keysPerOrganisationMax) { $0.encode($1) }
            writer.list(org.members, max: Self.keysPerOrganisationMax) { $0.encode($1) }
            writer.list(org.validators, max: Self.keysPerOrganisationMax) { writer, validator in
                writer.encode(validator.publicKey)
                writer.u64(validator.power)
            }
            if let authority = org.tlsAuthority {
                writer.u8(1)
                writer.string(authority, max: Self.tlsAuthorityBytesMax)
            } else {
                writer.u8(0)
            }
        }
        writer.list(allocations, max: Self.allocationsMax) { writer, allocation in
            writer.encode(allocation.account)
            writer.u64(allocation.amount)
        }
        writer.u64(consensus.blockIntervalMilliseconds)
        writer.u32(consensus.blockTransactionsMax)
        writer.u64(consensus.blockGasMax)
        writer.u64(timestampMilliseconds)
    }
}

extension Genesis: Codable {
    enum CodingKeys: String, CodingKey {
        case chainId, hashSuite, signatureSchemes, organisations, allocations, consensus, timestampMilliseconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        chainId = try container.decode(String.self, forKey: .chainId)
        let suiteName = try container.decode(String.self, forKey: .hashSuite)
        guard let suite = HashSuiteID(name: suiteName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .hashSuite, in: container, debugDescription: "hash suite must be sha256 or sm3, not \(suiteName)")
        }
        hashSuite = suite
        signatureSchemes = try container.decode([String].self, forKey: .signatureSchemes).map { name in
            guard let scheme = SignatureScheme(name: name) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .signatureSchemes, in: container,
                    debugDescription: "unknown signature scheme \(name); known: ed25519, p256, sm2, mldsa65")
            }
            return scheme
        }
        organisations = try container.decode([Organisation].self, forKey: .organisations)
        allocations = try container.decodeIfPresent([Allocation].self, forKey: .allocations) ?? []
        consensus = try container.decodeIfPresent(ConsensusParameters.self, forKey: .consensus) ?? .init()
        timestampMilliseconds = try container.decodeIfPresent(UInt64.self, forKey: .timestampMilliseconds) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(chainId, forKey: .chainId)
        try container.encode(hashSuite.name, forKey: .hashSuite)
        try container.encode(signatureSchemes.map(\.name), forKey: .signatureSchemes)
        try container.encode(organisations, forKey: .organisations)
        try container.encode(allocations, forKey: .allocations)
        try container.encode(consensus, forKey: .consensus)
        try container.encode(timestampMilliseconds, forKey: .timestampMilliseconds)
    }

    /// Reads and validates a genesis file, with errors that name the file and the problem.
    public static func load(from url: URL) throws -> Genesis {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw GenesisError("cannot read \(url.path): \(error.localizedDescription)")
        }
        let genesis: Genesis
        do { genesis = try JSONDecoder().decode(Genesis.self, from: data) } catch {
            throw GenesisError("\(url.path): \(JSONErrorText.describe(error))")
        }
        try genesis.validate()
        return genesis
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

extension PublicKey: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do { try self.init(text: text) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Turns Foundation's decoding errors into one line that names the field.
public enum JSONErrorText {
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return text.isEmpty ? "top level" : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field \(key.stringValue) at \(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type at \(path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            return "bad value at \(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
