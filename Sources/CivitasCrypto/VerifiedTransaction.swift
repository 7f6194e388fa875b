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
        try verifyAll([transaction], encodedSizes: [encodedSize], hasher: hasher, verifier: verifier)[0].get()
    }

    /// Checks many transactions' signatures together (a verifier may batch them), each
    /// answer in the input order. `encodedSizes`, when given, has one entry per transaction.
    public static func verifyAll(
        _ transactions: [SignedTransaction], encodedSizes: [Int?]? = nil, hasher: some CivitasCore.HashFunction,
        verifier: some SignatureVerifier
    ) -> [Result<VerifiedTransaction, TransactionError>] {
        precondition(encodedSizes == nil || encodedSizes?.count == transactions.count)
        let ids = transactions.map { $0.body.id(using: hasher) }
        var results: [Result<VerifiedTransaction, TransactionError>?] = Array(repeating: nil, count: transactions.count)
        var checks: [SignatureCheck] = []
        var checked: [Int] = []
        checks.reserveCapacity(transactions.count)
        for (index, transaction) in transactions.enumerated() {
            guard transaction.signature.scheme == transaction.body.sender.scheme else {
                results[index] = .failure(
                    TransactionError(
                        .badSignature,
                        "signature scheme \(transaction.signature.scheme) differs from sender's \(transaction.body.sender.scheme)"))
                continue
            }
            checks.append(SignatureCheck(transaction.signature, of: SignedTransaction.signingMessage(id: ids[index]), by: transaction.body.sender))
            checked.append(index)
        }
        for (index, valid) in zip(checked, verifier.areValidTransactionSignatures(checks)) {
            let transaction = transactions[index]
            results[index] =
                valid
                ? .success(
                    VerifiedTransaction(
                        transaction: transaction, id: ids[index],
                        encodedSize: encodedSizes?[index] ?? transaction.canonicalBytes.count))
                : .failure(TransactionError(.badSignature, "signature does not verify against the sender key"))
        }
        return results.map { $0! }
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
