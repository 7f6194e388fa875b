import CivitasCore

/// A transaction whose signature has been checked. Only this type reaches the mempool
/// and the executor, so an unchecked transaction cannot be executed by mistake.
public struct VerifiedTransaction: Sendable, Hashable {
    public let transaction: SignedTransaction
    public let id: Hash
    /// Bytes of the canonical encoding: what gas and mempool limits count.
    public let encodedSize: Int

    public var body: TransactionBody { transaction.body }

    /// Checks the sender's signature over the transaction id. `encodedSize` may be
    /// passed when the caller already holds the wire bytes.
    public static func verify(
        _ transaction: SignedTransaction, hasher: some CivitasCore.HashFunction, verifier: some SignatureVerifier,
        encodedSize: Int? = nil
    ) throws(TransactionError) -> VerifiedTransaction {
        let id = transaction.body.id(using: hasher)
        guard transaction.signature.scheme == transaction.body.sender.scheme else {
            throw TransactionError(.badSignature, "signature scheme \(transaction.signature.scheme) differs from sender's \(transaction.body.sender.scheme)")
        }
        guard verifier.isValid(transaction.signature, of: SignedTransaction.signingMessage(id: id), by: transaction.body.sender) else {
            throw TransactionError(.badSignature, "signature does not verify against the sender key")
        }
        return VerifiedTransaction(
            transaction: transaction, id: id, encodedSize: encodedSize ?? transaction.canonicalBytes.count)
    }

    /// For transactions read back from this node's own committed blocks, which were
    /// verified before they were committed (decision 3: verify once).
    public static func trustedFromLedger(_ transaction: SignedTransaction, hasher: some CivitasCore.HashFunction) -> VerifiedTransaction {
        let bytes = transaction.canonicalBytes
        return VerifiedTransaction(transaction: transaction, id: transaction.body.id(using: hasher), encodedSize: bytes.count)
    }

    private init(transaction: SignedTransaction, id: Hash, encodedSize: Int) {
        self.transaction = transaction
        self.id = id
        self.encodedSize = encodedSize
    }
}

/// Why a transaction is refused before execution (at the API or mempool).
public struct TransactionError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        case malformed = "tx.malformed"
        case oversized = "tx.oversized"
        case wrongChain = "tx.wrong_chain"
        case unknownScheme = "tx.unknown_scheme"
        case schemeNotAccepted = "tx.scheme_not_accepted"
        case badSignature = "tx.bad_signature"
        case unknownSender = "tx.unknown_sender"
        case nonceTooLow = "tx.nonce_too_low"
        case nonceTooHigh = "tx.nonce_too_high"
        case duplicate = "tx.duplicate"
        case expired = "tx.expired"
        case gasLimitTooLow = "tx.gas_limit_too_low"
        case gasLimitTooHigh = "tx.gas_limit_too_high"
        case mempoolFull = "mempool.full"
        case senderQueueFull = "mempool.sender_queue_full"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public init(decoding error: CodecError) {
        switch error {
        case .oversize(let field, _, _) where field == "transaction":
            self.init(.oversized, error.description)
        case .unknownTag(let field, _) where field.contains("scheme"):
            self.init(.unknownScheme, error.description)
        default:
            self.init(.malformed, error.description)
        }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    /// Overload is temporary: the client may retry later. Everything else is final.
    public var isRetryable: Bool { code == .mempoolFull || code == .senderQueueFull }
    public var description: String { "\(code.rawValue): \(message)" }
}
