import CivitasCore
import CivitasCrypto

/// Builds and signs transactions for a chain, as an application or the CLI does.
public struct TransactionBuilder: Sendable {
    public let chainId: String
    public let hasher: ChainHasher
    public let key: PrivateKey

    public init(chainId: String, hashSuite: HashSuiteID, key: PrivateKey) {
        self.chainId = chainId
        self.hasher = ChainHasher(hashSuite)
        self.key = key
    }

    public var sender: PublicKey { key.publicKey }
    public var address: Address { Address(of: key.publicKey, using: hasher) }

    public func sign(
        call: Call, nonce: UInt64, expiryHeight: UInt64, gasLimit: UInt64 = 1_000_000
    ) throws(CryptoError) -> (transaction: SignedTransaction, id: Hash) {
        let body = TransactionBody(
            chainId: chainId, sender: key.publicKey, nonce: nonce, expiryHeight: expiryHeight, gasLimit: gasLimit, call: call)
        let id = body.id(using: hasher)
        let signature = try key.sign(SignedTransaction.signingMessage(id: id))
        return (SignedTransaction(body: body, signature: signature), id)
    }
}
