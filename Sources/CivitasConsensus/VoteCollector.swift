import CivitasCore

/// Gathers verified votes for one block until their signers hold a quorum of power.
public struct VoteCollector: Sendable {
    public let validators: ValidatorSet
    public let vote: VoteData
    private var entries: [UInt16: Signature] = [:]
    private var power: UInt64 = 0

    public init(validators: ValidatorSet, vote: VoteData) {
        self.validators = validators
        self.vote = vote
    }

    /// Adds a vote whose signature the caller has checked; returns the certificate
    /// once a quorum is reached, and nil before.
    public mutating func add(validator: UInt16, signature: Signature) -> QuorumCertificate? {
        precondition(Int(validator) < validators.validators.count, "vote from outside the validator set")
        if entries[validator] == nil {
            entries[validator] = signature
            power += validators.validators[Int(validator)].power
        }
        guard power >= validators.quorumPower else { return nil }
        return QuorumCertificate(
            vote: vote, signatures: entries.map { QuorumCertificate.Entry(validator: $0.key, signature: $0.value) })
    }
}
