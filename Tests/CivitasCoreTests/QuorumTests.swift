import CivitasCore
import CivitasCrypto
import CivitasTesting
import Testing

@Suite struct QuorumTests {
    let keys = (1...4).map { try! PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8($0), count: 32)) }

    var set: ValidatorSet {
        try! ValidatorSet(epoch: 0, validators: keys.enumerated().map { Validator(organisation: "o\($0)", publicKey: $1.publicKey, power: 1) })
    }

    func certificate(signers: [Int], vote: VoteData) -> QuorumCertificate {
        QuorumCertificate(
            vote: vote, signatures: signers.map { .init(validator: UInt16($0), signature: try! keys[$0].sign(vote.signingMessage)) })
    }

    let vote = VoteData(chainId: "c", epoch: 0, round: 5, height: 5, blockHash: .zero)

    @Test func quorumIsMoreThanTwoThirds() {
        #expect(set.quorumPower == 3)
        #expect(throws: Never.self) { try certificate(signers: [0, 1, 2], vote: vote).verify(against: set, verifier: SignatureVerifiers()) }
        #expect(throws: CertificateError(.noQuorum, "")) {
            try certificate(signers: [0, 3], vote: vote).verify(against: set, verifier: SignatureVerifiers())
        }
    }

    @Test func forgedOrMisplacedSignaturesFail() {
        var forged = certificate(signers: [0, 1, 2], vote: vote)
        forged.signatures[1].signature = forged.signatures[0].signature
        #expect(throws: CertificateError(.badSignature, "")) { try forged.verify(against: set, verifier: SignatureVerifiers()) }
        var otherBlock = certificate(signers: [0, 1, 2], vote: vote)
        otherBlock.vote.blockHash = Hash(bytes: [UInt8](repeating: 1, count: 32))
        #expect(throws: CertificateError(.badSignature, "")) { try otherBlock.verify(against: set, verifier: SignatureVerifiers()) }
        var outside = certificate(signers: [0, 1, 2], vote: vote)
        outside.signatures.append(.init(validator: 9, signature: outside.signatures[0].signature))
        #expect(throws: CertificateError(.unknownSigner, "")) { try outside.verify(against: set, verifier: SignatureVerifiers()) }
        let wrongEpoch = certificate(signers: [0, 1, 2], vote: VoteData(chainId: "c", epoch: 1, round: 5, height: 5, blockHash: .zero))
        #expect(throws: CertificateError(.wrongEpoch, "")) { try wrongEpoch.verify(against: set, verifier: SignatureVerifiers()) }
    }

    @Test func merkleRootShape() {
        let hasher = SHA256Hasher()
        let leaves = (0..<5).map { Hash(bytes: [UInt8](repeating: UInt8($0), count: 32)) }
        #expect(hasher.merkleRoot([]) == .zero)
        #expect(hasher.merkleRoot([leaves[0]]) == hasher.hash(.listLeaf, leaves[0].bytes))
        #expect(hasher.merkleRoot(leaves) != hasher.merkleRoot(Array(leaves.reversed())))
        #expect(hasher.merkleRoot(leaves) != hasher.merkleRoot(Array(leaves.prefix(4))))
    }
}
