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

    public init(header: BlockHeader, certificate: QuorumCertificate, proof: StateProof, blockHash: Hash) {
        chainId = header.chainId
        height = header.height
        key = proof.key.hexString
        value = proof.value?.hexString
        stateRoot = header.stateRoot.hex
        self.blockHash = blockHash.hex
        self.header = header.canonicalBytes.hexString
        self.certificate = certificate.canonicalBytes.hexString
        self.proof = proof.canonicalBytes.hexString
    }
}
