/// A signature scheme a chain may accept. The raw value is the tag byte that precedes
/// every public key and signature on the wire.
public enum SignatureScheme: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case ed25519 = 1
    case p256 = 2
    case sm2 = 3
    case mldsa65 = 4

    public var name: String {
        switch self {
        case .ed25519: "ed25519"
        case .p256: "p256"
        case .sm2: "sm2"
        case .mldsa65: "mldsa65"
        }
    }

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    /// Ed25519: 32-byte point (RFC 8032). P-256 and SM2: 65-byte uncompressed SEC1
    /// point. ML-DSA-65: FIPS 204 encoding.
    public var publicKeyBytes: Int {
        switch self {
        case .ed25519: 32
        case .p256, .sm2: 65
        case .mldsa65: 1952
        }
    }

    /// Ed25519: R‖S. P-256 and SM2: r‖s, 32 bytes each, big-endian. ML-DSA-65: FIPS 204.
    public var signatureBytes: Int {
        switch self {
        case .ed25519, .p256, .sm2: 64
        case .mldsa65: 3309
        }
    }

    /// Ed25519 seed, P-256/SM2 scalar, ML-DSA-65 seed: all 32 bytes.
    public var privateKeyBytes: Int { 32 }

    public var description: String { name }
}

extension SignatureScheme {
    static func decodeTag(_ reader: inout CanonicalReader, _ field: String) throws(CodecError) -> SignatureScheme {
        let tag = try reader.u8(field)
        guard let scheme = SignatureScheme(rawValue: tag) else { throw .unknownTag(field: field, tag: tag) }
        return scheme
    }
}

/// A public key with its scheme: the identity of a signer.
///
/// Encoding: scheme tag (1 byte) then the key bytes, whose length the scheme fixes.
public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
    public let scheme: SignatureScheme
    public let bytes: [UInt8]

    public init(scheme: SignatureScheme, bytes: [UInt8]) throws(CodecError) {
        guard bytes.count == scheme.publicKeyBytes else {
            throw .invalid(field: "public key", reason: "\(scheme) keys are \(scheme.publicKeyBytes) bytes, got \(bytes.count)")
        }
        self.scheme = scheme
        self.bytes = bytes
    }

    /// `scheme:hex`, the form used in genesis files, the CLI and the API.
    public var description: String { "\(scheme.name):\(bytes.hexString)" }

    public init(text: String) throws(CodecError) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let scheme = SignatureScheme(name: String(parts[0])) else {
            throw .invalid(field: "public key", reason: "expected scheme:hex, e.g. ed25519:…")
        }
        guard let raw = [UInt8](hex: String(parts[1])) else {
            throw .invalid(field: "public key", reason: "key is not hex")
        }
        try self.init(scheme: scheme, bytes: raw)
    }
}

extension PublicKey: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u8(scheme.rawValue)
        writer.fixed(bytes)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        let scheme = try SignatureScheme.decodeTag(&reader, "public key scheme")
        try self.init(scheme: scheme, bytes: reader.fixed(scheme.publicKeyBytes, "public key"))
    }
}

/// A signature with its scheme. Encoding: scheme tag then the fixed-length signature.
public struct Signature: Hashable, Sendable {
    public let scheme: SignatureScheme
    public let bytes: [UInt8]

    public init(scheme: SignatureScheme, bytes: [UInt8]) throws(CodecError) {
        guard bytes.count == scheme.signatureBytes else {
            throw .invalid(field: "signature", reason: "\(scheme) signatures are \(scheme.signatureBytes) bytes, got \(bytes.count)")
        }
        self.scheme = scheme
        self.bytes = bytes
    }
}

extension Signature: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u8(scheme.rawValue)
        writer.fixed(bytes)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        let scheme = try SignatureScheme.decodeTag(&reader, "signature scheme")
        try self.init(scheme: scheme, bytes: reader.fixed(scheme.signatureBytes, "signature"))
    }
}

/// Checks signatures; `CivitasCrypto` implements it for every scheme.
public protocol SignatureVerifier: Sendable {
    /// RFC 8032's strict rules for Ed25519: what consensus messages and certificates use,
    /// so a light client with any standard library agrees with the validators.
    func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool

    /// Transaction signatures, decided together where a scheme allows (Ed25519 batches,
    /// ADR 0008), in the checks' order. A transaction's answer never depends on the
    /// others it is checked with.
    func areValidTransactionSignatures(_ checks: [SignatureCheck]) -> [Bool]
}

extension SignatureVerifier {
    public func areValidTransactionSignatures(_ checks: [SignatureCheck]) -> [Bool] {
        checks.map { isValid($0.signature, of: $0.message, by: $0.key) }
    }
}

/// A signature to check: who signed what.
public struct SignatureCheck: Hashable, Sendable {
    public var signature: Signature
    public var message: [UInt8]
    public var key: PublicKey

    public init(_ signature: Signature, of message: [UInt8], by key: PublicKey) {
        self.signature = signature
        self.message = message
        self.key = key
    }
}

/// The on-ledger name of an identity: the hash of its encoded public key. Balances and
/// namespaces are keyed by it so that a 1,952-byte ML-DSA key costs 32 bytes in state.
public struct Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let hash: Hash
    public init(_ hash: Hash) { self.hash = hash }

    public init(of key: PublicKey, using hasher: some HashFunction) {
        hash = hasher.hash(.identity, key.canonicalBytes)
    }

    public static func < (lhs: Address, rhs: Address) -> Bool { lhs.hash < rhs.hash }
    public var description: String { hash.hex }
}
