import CivitasCore

/// A leader's block for its round (the header commits to the transactions, their
/// receipts and the state after them) and the certificate that justifies the round.
///
/// The block carries its transactions (ADR 0003): validators have usually verified them
/// already from gossip, and verify only the ones they have not seen.
public struct Proposal: Hashable, Sendable {
    public var block: Block
    /// Certifies `header.parent`.
    public var justify: QuorumCertificate
    /// Present when the previous round ended by timeout rather than by `justify`.
    public var timeout: TimeoutCertificate?
    /// The proposer's signature over `"civitas.proposal" 0x00 ‖ blockHash`.
    public var signature: Signature

    public init(block: Block, justify: QuorumCertificate, timeout: TimeoutCertificate?, signature: Signature) {
        self.block = block
        self.justify = justify
        self.timeout = timeout
        self.signature = signature
    }

    public var header: BlockHeader { block.header }

    public static func signingMessage(blockHash: Hash) -> [UInt8] {
        HashDomain.proposal.prefix + blockHash.bytes
    }
}

/// One validator's vote, sent to the leader of the next round.
public struct Vote: Hashable, Sendable {
    public var data: VoteData
    public var validator: UInt16
    public var signature: Signature

    public init(data: VoteData, validator: UInt16, signature: Signature) {
        self.data = data
        self.validator = validator
        self.signature = signature
    }
}

/// A validator's statement that `round` made no progress, with the highest certificate
/// it knows, broadcast to all.
public struct TimeoutVote: Hashable, Sendable {
    public var epoch: UInt64
    public var round: UInt64
    public var highestCertificate: QuorumCertificate
    /// The timeout certificate that ended the round before, when one did: a validator
    /// still in that round learns from it that the others moved on.
    public var lastRoundTimeout: TimeoutCertificate?
    public var validator: UInt16
    /// Over `TimeoutVote.signingMessage(chainId, epoch, round, highestCertificate.round)`.
    public var signature: Signature

    public init(
        epoch: UInt64, round: UInt64, highestCertificate: QuorumCertificate, lastRoundTimeout: TimeoutCertificate?,
        validator: UInt16, signature: Signature
    ) {
        self.epoch = epoch
        self.round = round
        self.highestCertificate = highestCertificate
        self.lastRoundTimeout = lastRoundTimeout
        self.validator = validator
        self.signature = signature
    }

    /// What a validator signs: the round and the round of its highest certificate, so
    /// that a timeout certificate can carry the signatures without the certificates.
    public static func signingMessage(chainId: String, epoch: UInt64, round: UInt64, certifiedRound: UInt64) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.fixed(HashDomain.timeout.prefix)
        writer.string(chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.u64(epoch)
        writer.u64(round)
        writer.u64(certifiedRound)
        return writer.bytes
    }
}

/// Timeouts of a quorum for one round, and the highest certificate they reported.
public struct TimeoutCertificate: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var validator: UInt16
        public var certifiedRound: UInt64
        public var signature: Signature

        public init(validator: UInt16, certifiedRound: UInt64, signature: Signature) {
            self.validator = validator
            self.certifiedRound = certifiedRound
            self.signature = signature
        }
    }

    public var epoch: UInt64
    public var round: UInt64
    /// Strictly increasing validator indexes.
    public var entries: [Entry]
    /// The certificate of the highest round among the entries.
    public var highestCertificate: QuorumCertificate

    public init(epoch: UInt64, round: UInt64, entries: [Entry], highestCertificate: QuorumCertificate) {
        self.epoch = epoch
        self.round = round
        self.entries = entries.sorted { $0.validator < $1.validator }
        self.highestCertificate = highestCertificate
    }

    public var highestCertifiedRound: UInt64 { entries.map(\.certifiedRound).max() ?? 0 }
}

/// The consensus messages validators exchange.
public enum ConsensusMessage: Hashable, Sendable {
    case proposal(Proposal)
    case vote(Vote)
    case timeout(TimeoutVote)

    public var epoch: UInt64 {
        switch self {
        case .proposal(let proposal): proposal.header.epoch
        case .vote(let vote): vote.data.epoch
        case .timeout(let timeout): timeout.epoch
        }
    }
}

// MARK: Encoding (docs/protocol.md, "Consensus messages")

extension Proposal: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(block)
        writer.encode(justify)
        writer.optional(timeout)
        writer.encode(signature)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        block = try reader.decode(Block.self)
        justify = try reader.decode(QuorumCertificate.self)
        timeout = try reader.optional("timeout", TimeoutCertificate.self)
        signature = try reader.decode(Signature.self)
    }
}

extension Vote: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(data)
        writer.u16(validator)
        writer.encode(signature)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        data = try reader.decode(VoteData.self)
        validator = try reader.u16("validator index")
        signature = try reader.decode(Signature.self)
    }
}

extension TimeoutVote: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(epoch)
        writer.u64(round)
        writer.encode(highestCertificate)
        writer.optional(lastRoundTimeout)
        writer.u16(validator)
        writer.encode(signature)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        epoch = try reader.u64("epoch")
        round = try reader.u64("round")
        highestCertificate = try reader.decode(QuorumCertificate.self)
        lastRoundTimeout = try reader.optional("last round timeout", TimeoutCertificate.self)
        validator = try reader.u16("validator index")
        signature = try reader.decode(Signature.self)
    }
}

extension TimeoutCertificate: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(epoch)
        writer.u64(round)
        writer.list(entries, max: ProtocolLimits.validatorsMax) { writer, entry in
            writer.u16(entry.validator)
            writer.u64(entry.certifiedRound)
            writer.encode(entry.signature)
        }
        writer.encode(highestCertificate)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        epoch = try reader.u64("epoch")
        round = try reader.u64("round")
        entries = try reader.list("timeout entries", max: ProtocolLimits.validatorsMax) {
            (reader: inout CanonicalReader) throws(CodecError) in
            Entry(
                validator: try reader.u16("validator index"), certifiedRound: try reader.u64("certified round"),
                signature: try reader.decode(Signature.self))
        }
        for (earlier, later) in zip(entries, entries.dropFirst()) where earlier.validator >= later.validator {
            throw .invalid(field: "timeout entries", reason: "validator indexes must strictly increase")
        }
        highestCertificate = try reader.decode(QuorumCertificate.self)
    }
}

extension ConsensusMessage: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .proposal(let proposal):
            writer.u8(1)
            writer.encode(proposal)
        case .vote(let vote):
            writer.u8(2)
            writer.encode(vote)
        case .timeout(let timeout):
            writer.u8(3)
            writer.encode(timeout)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        switch try reader.u8("consensus message kind") {
        case 1: self = .proposal(try reader.decode(Proposal.self))
        case 2: self = .vote(try reader.decode(Vote.self))
        case 3: self = .timeout(try reader.decode(TimeoutVote.self))
        case let tag: throw .unknownTag(field: "consensus message kind", tag: tag)
        }
    }
}
