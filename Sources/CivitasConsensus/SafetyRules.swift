import CivitasCore

/// What a validator must remember across restarts so that it never signs two
/// conflicting votes. Persisted durably before any vote leaves the node.
public struct SafetyData: Hashable, Sendable, CanonicalCodable {
    public var epoch: UInt64
    public var lastVotedRound: UInt64
    /// Whether any vote has been cast in this epoch; round 0 is a valid round.
    public var hasVoted: Bool

    public init(epoch: UInt64, lastVotedRound: UInt64 = 0, hasVoted: Bool = false) {
        self.epoch = epoch
        self.lastVotedRound = lastVotedRound
        self.hasVoted = hasVoted
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(epoch)
        writer.u64(lastVotedRound)
        writer.bool(hasVoted)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        epoch = try reader.u64("epoch")
        lastVotedRound = try reader.u64("last voted round")
        hasVoted = try reader.bool("has voted")
    }
}

public struct SafetyError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "safety: \(message)" }
}

/// The voting rules of one validator, apart from everything else so they can be read
/// and tested whole. A vote is returned together with the safety data that must be
/// durable before the vote is signed and sent.
public struct SafetyRules: Sendable {
    public private(set) var data: SafetyData

    public init(data: SafetyData) { self.data = data }

    /// Vote for `proposal` at its round.
    ///
    /// Rule: never vote twice in a round nor for an older round — two votes in one round
    /// could certify two different blocks at one height.
    public mutating func vote(for proposal: VoteData) throws(SafetyError) -> (vote: VoteData, persist: SafetyData) {
        guard proposal.epoch == data.epoch else {
            throw SafetyError("proposal of epoch \(proposal.epoch), this validator is in epoch \(data.epoch)")
        }
        guard !data.hasVoted || proposal.round > data.lastVotedRound else {
            throw SafetyError("already voted in round \(data.lastVotedRound); refusing round \(proposal.round)")
        }
        data.lastVotedRound = proposal.round
        data.hasVoted = true
        return (proposal, data)
    }
}
