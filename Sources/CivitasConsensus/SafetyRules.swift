import CivitasCore

/// What a validator must remember across restarts so that it never signs two
/// conflicting messages. Durable before any vote or timeout leaves the node.
public struct SafetyData: Hashable, Sendable, CanonicalCodable {
    public var epoch: UInt64
    /// The highest round this validator voted or timed out in; 0 before any.
    public var highestVotedRound: UInt64
    /// The highest round of a certificate this validator has built on (its lock).
    public var highestCertifiedRound: UInt64
    /// No block votes up to this round. A validator that lost its safety data (a wiped
    /// or replaced disk) may have voted in any round the network had reached; it sets
    /// this to that round and votes only in later ones. Timeouts stay allowed, so a
    /// recovering validator still helps the others leave a stuck round.
    public var abstainThroughRound: UInt64

    public init(epoch: UInt64, highestVotedRound: UInt64 = 0, highestCertifiedRound: UInt64 = 0, abstainThroughRound: UInt64 = 0) {
        self.epoch = epoch
        self.highestVotedRound = highestVotedRound
        self.highestCertifiedRound = highestCertifiedRound
        self.abstainThroughRound = abstainThroughRound
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(epoch)
        writer.u64(highestVotedRound)
        writer.u64(highestCertifiedRound)
        writer.u64(abstainThroughRound)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        epoch = try reader.u64("epoch")
        highestVotedRound = try reader.u64("highest voted round")
        highestCertifiedRound = try reader.u64("highest certified round")
        abstainThroughRound = try reader.u64("abstain through round")
    }
}

public struct SafetyError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "safety: \(message)" }
}

/// The voting rules of one validator (Jolteon / DiemBFT v4, 2-chain), apart from
/// everything else so they can be read and tested whole. Each rule returns the safety
/// data that must be durable before the signed message exists.
///
/// Rounds start at 1; the epoch's root block has round 0 and needs no vote.
public struct SafetyRules: Sendable {
    public private(set) var data: SafetyData

    public init(data: SafetyData) { self.data = data }

    /// Vote for a block of `blockRound` whose certificate has `certifiedRound`, entered
    /// through `timeout` when the previous round ended without a certificate.
    ///
    /// Never vote twice in a round or for an older round. Vote only for a block that
    /// extends the certificate of the round just before it, or, after a timeout
    /// certificate for that round, one that extends a certificate at least as high as
    /// any the timed-out validators reported: a committed block's certificate is among
    /// those (a quorum saw it), so every later block extends the committed one.
    public mutating func vote(
        blockRound: UInt64, certifiedRound: UInt64, timeout: TimeoutCertificate?
    ) throws(SafetyError) -> SafetyData {
        guard blockRound > data.abstainThroughRound else {
            throw SafetyError("abstaining through round \(data.abstainThroughRound) after losing safety data")
        }
        guard blockRound > max(data.highestVotedRound, certifiedRound) else {
            throw SafetyError(
                "round \(blockRound) is not above the last voted round \(data.highestVotedRound) and certificate round \(certifiedRound)")
        }
        let extendsCertificate = blockRound == certifiedRound + 1
        let extendsTimeout = timeout.map { blockRound == $0.round + 1 && certifiedRound >= $0.highestCertifiedRound } ?? false
        guard extendsCertificate || extendsTimeout else {
            throw SafetyError("block of round \(blockRound) extends neither the certificate nor the timeout of round \(blockRound - 1)")
        }
        data.highestCertifiedRound = max(data.highestCertifiedRound, certifiedRound)
        data.highestVotedRound = blockRound
        return data
    }

    /// Time out of `round`, reporting a highest certificate of `certifiedRound`.
    ///
    /// Never report a certificate lower than one already built on (that would hide a
    /// possibly committed block from the next leader), and never time out of a round
    /// below one already voted in.
    /// Refuse block votes through `round` (kept if already higher).
    public mutating func abstain(through round: UInt64) -> SafetyData {
        data.abstainThroughRound = max(data.abstainThroughRound, round)
        return data
    }

    /// Whether this validator may propose in `round`: it votes for its own proposal, so
    /// the same rules apply, and a restarted leader never signs a second block for a
    /// round it already acted in.
    public func mayPropose(round: UInt64) -> Bool {
        round > data.highestVotedRound && round > data.abstainThroughRound
    }

    public mutating func timeout(
        round: UInt64, certifiedRound: UInt64, timeout previous: TimeoutCertificate?
    ) throws(SafetyError) -> SafetyData {
        guard certifiedRound >= data.highestCertifiedRound else {
            throw SafetyError("certificate of round \(certifiedRound) is below the lock \(data.highestCertifiedRound)")
        }
        guard round + 1 > data.highestVotedRound, round > certifiedRound else {
            throw SafetyError("round \(round) is behind the last voted round \(data.highestVotedRound)")
        }
        guard round == certifiedRound + 1 || round == (previous?.round ?? 0) + 1 && previous != nil else {
            throw SafetyError("round \(round) was entered by neither a certificate nor a timeout of the round before")
        }
        data.highestCertifiedRound = certifiedRound
        data.highestVotedRound = max(data.highestVotedRound, round)
        return data
    }
}
