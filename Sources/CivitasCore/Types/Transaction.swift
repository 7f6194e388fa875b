/// A call to a method of a system module (and later a contract), with its arguments in
/// the module's own canonical encoding.
public struct Call: Hashable, Sendable {
    public var module: String
    public var method: String
    public var arguments: [UInt8]

    public init(module: String, method: String, arguments: [UInt8]) {
        self.module = module
        self.method = method
        self.arguments = arguments
    }
}

extension Call: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.string(module, max: ProtocolLimits.moduleNameBytesMax)
        writer.string(method, max: ProtocolLimits.methodNameBytesMax)
        writer.byteString(arguments, max: ProtocolLimits.callArgumentsBytesMax)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        module = try reader.string("call module", max: ProtocolLimits.moduleNameBytesMax)
        method = try reader.string("call method", max: ProtocolLimits.methodNameBytesMax)
        arguments = try reader.byteString("call arguments", max: ProtocolLimits.callArgumentsBytesMax)
    }
}

/// The part of a transaction that is signed and whose hash is the transaction id.
public struct TransactionBody: Hashable, Sendable {
    public static let version: UInt8 = 1

    public var chainId: String
    public var sender: PublicKey
    /// Must equal the sender's account nonce when executed; increments by one.
    public var nonce: UInt64
    /// The last height at which the transaction may be included.
    public var expiryHeight: UInt64
    public var gasLimit: UInt64
    public var call: Call

    public init(chainId: String, sender: PublicKey, nonce: UInt64, expiryHeight: UInt64, gasLimit: UInt64, call: Call) {
        self.chainId = chainId
        self.sender = sender
        self.nonce = nonce
        self.expiryHeight = expiryHeight
        self.gasLimit = gasLimit
        self.call = call
    }

    public func id(using hasher: some HashFunction) -> Hash {
        hasher.hash(.transaction, canonicalBytes)
    }
}

extension TransactionBody: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u8(Self.version)
        writer.string(chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.encode(sender)
        writer.u64(nonce)
        writer.u64(expiryHeight)
        writer.u64(gasLimit)
        writer.encode(call)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        let version = try reader.u8("transaction version")
        guard version == Self.version else { throw .unknownTag(field: "transaction version", tag: version) }
        chainId = try reader.string("chain id", max: ProtocolLimits.chainIdBytesMax)
        sender = try reader.decode(PublicKey.self)
        nonce = try reader.u64("nonce")
        expiryHeight = try reader.u64("expiry height")
        gasLimit = try reader.u64("gas limit")
        call = try reader.decode(Call.self)
    }
}

/// A transaction as a client submits it: the body and the sender's signature over the
/// transaction id. Signing the id (not the body) keeps signing cost independent of
/// size and lets a hardware signer show a short digest.
public struct SignedTransaction: Hashable, Sendable {
    public var body: TransactionBody
    public var signature: Signature

    public init(body: TransactionBody, signature: Signature) {
        self.body = body
        self.signature = signature
    }

    /// The bytes a sender signs: the domain label "civitas.tx.sign", a zero byte, the id.
    public static func signingMessage(id: Hash) -> [UInt8] {
        Array("civitas.tx.sign".utf8) + [0] + id.bytes
    }
}

extension SignedTransaction: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(body)
        writer.encode(signature)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        body = try reader.decode(TransactionBody.self)
        signature = try reader.decode(Signature.self)
    }

    /// Decodes a transaction from the wire, refusing oversize input before parsing it.
    public init(wire bytes: [UInt8]) throws(CodecError) {
        guard bytes.count <= ProtocolLimits.transactionBytesMax else {
            throw .oversize(field: "transaction", length: bytes.count, max: ProtocolLimits.transactionBytesMax)
        }
        try self.init(canonicalBytes: bytes)
    }
}
