import Foundation

/// The portable form of a state proof: what `civitas kv get --proof` writes and
/// `civitas proof verify` checks. The three hex fields are the canonical encodings and
/// are all a verifier needs; the other fields repeat them for people to read, and a
/// verifier checks that they agree.
public struct ProofDocument: Codable, Sendable, Equatable {
    public var chainId: String
    public var height: UInt64
    public var key: String
    public var value: String?
    public var stateRoot: String
    public var blockHash: String
    public var header: String
    public var certificate: String
    public var proof: String
    /// Headers from the block's child to the block the certificate commits, when that
    /// is a later block; absent when the certificate commits this block.
    public var commitHeaders: [String]?
    /// The epoch hand-overs since the genesis, oldest first; absent in epoch 0.
    public var epochs: [String]?

    public init(
        header: BlockHeader, evidence: CommitEvidence, proof: StateProof, blockHash: Hash, epochs: [EpochChange] = []
    ) {
        chainId = header.chainId
        height = header.height
        key = proof.key.hexString
        value = proof.value?.hexString
        stateRoot = header.stateRoot.hex
        self.blockHash = blockHash.hex
        self.header = header.canonicalBytes.hexString
        self.certificate = evidence.certificate.canonicalBytes.hexString
        self.proof = proof.canonicalBytes.hexString
        commitHeaders = evidence.headers.isEmpty ? nil : evidence.headers.map { $0.canonicalBytes.hexString }
        self.epochs = epochs.isEmpty ? nil : epochs.map { $0.canonicalBytes.hexString }
    }
}
