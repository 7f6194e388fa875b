import CivitasConsensus
import CivitasCore
import CivitasState

/// Asks a peer for the blocks this node lacks: committed blocks above `committedHeight`,
/// then the certified blocks above the peer's committed tip.
public struct SyncRequest: Hashable, Sendable {
    public var committedHeight: UInt64
    public var blocksMax: UInt32

    public init(committedHeight: UInt64, blocksMax: UInt32) {
        self.committedHeight = committedHeight
        self.blocksMax = blocksMax
    }
}

/// Committed blocks (consecutive, the first above the requester's tip, all of one
/// epoch) with the evidence that commits the last of them, then certified blocks above
/// those, each with its certificate. Everything is checked on arrival; nothing is trusted.
public struct SyncResponse: Hashable, Sendable {
    public struct Certified: Hashable, Sendable {
        public var block: Block
        public var certificate: QuorumCertificate

        public init(block: Block, certificate: QuorumCertificate) {
            self.block = block
            self.certificate = certificate
        }
    }

    public var committed: [Block]
    /// The certificate the sender keeps for each committed block (the one that
    /// committed it), so the requester can later prove each block on its own.
    public var commitCertificates: [QuorumCertificate]
    public var commitEvidence: CommitEvidence?
    public var certified: [Certified]

    public init(committed: [Block], commitCertificates: [QuorumCertificate], commitEvidence: CommitEvidence?, certified: [Certified]) {
        self.committed = committed
        self.commitCertificates = commitCertificates
        self.commitEvidence = commitEvidence
        self.certified = certified
    }

    public static let blocksMax: UInt32 = 256
}

/// Asks for the state at a committed height (0: the peer's latest), in pages of
/// entries after key hash `after` (nil: from the start, with the block and its proofs).
public struct SnapshotRequest: Hashable, Sendable {
    public var height: UInt64
    public var after: Hash?

    public init(height: UInt64, after: Hash?) {
        self.height = height
        self.after = after
    }
}

/// What a snapshot starts with: block H with its receipts, the evidence that commits
/// it, and the hand-overs from the genesis up to it.
public struct SnapshotHead: Hashable, Sendable {
    public var block: Block
    public var receipts: [Receipt]
    public var evidence: CommitEvidence
    public var epochs: [EpochChange]

    public init(block: Block, receipts: [Receipt], evidence: CommitEvidence, epochs: [EpochChange]) {
        self.block = block
        self.receipts = receipts
        self.evidence = evidence
        self.epochs = epochs
    }

    public static let epochsMax = 100_000
}

/// One page of a snapshot: entries in increasing key-hash order; `done` after the last.
public struct SnapshotChunk: Hashable, Sendable {
    public var height: UInt64
    public var head: SnapshotHead?
    public var entries: [StateTree.Entry]
    public var done: Bool

    public init(height: UInt64, head: SnapshotHead?, entries: [StateTree.Entry], done: Bool) {
        self.height = height
        self.head = head
        self.entries = entries
        self.done = done
    }

    public static let entriesMax = 10_000
    public static let bytesMax = 4 << 20
}

/// What validators send each other (docs/protocol.md, "Peer frames").
public enum PeerMessage: Hashable, Sendable {
    case consensus(ConsensusMessage)
    /// Gossip of client transactions; the receiver verifies each once and admits it.
    case transactions([SignedTransaction])
    case syncRequest(SyncRequest)
    case syncResponse(SyncResponse)
    case snapshotRequest(SnapshotRequest)
    case snapshotChunk(SnapshotChunk)
}

extension SnapshotRequest: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(height)
        writer.optional(after)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        height = try reader.u64("height")
        after = try reader.optional("after", Hash.self)
    }
}

extension SnapshotHead: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(block)
        writer.list(receipts, max: ProtocolLimits.blockTransactionsMax) { $0.encode($1) }
        writer.encode(evidence)
        writer.list(epochs, max: Self.epochsMax) { $0.encode($1) }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        block = try reader.decode(Block.self)
        receipts = try reader.list("receipts", max: ProtocolLimits.blockTransactionsMax) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(Receipt.self)
        }
        evidence = try reader.decode(CommitEvidence.self)
        epochs = try reader.list("epochs", max: Self.epochsMax) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(EpochChange.self)
        }
    }
}

extension SnapshotChunk: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(height)
        writer.optional(head)
        writer.list(entries, max: Self.entriesMax) { writer, entry in
            writer.byteString(entry.key, max: ProtocolLimits.stateKeyBytesMax)
            writer.byteString(entry.value, max: ProtocolLimits.stateValueBytesMax)
        }
        writer.bool(done)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        height = try reader.u64("height")
        head = try reader.optional("snapshot head", SnapshotHead.self)
        entries = try reader.list("entries", max: Self.entriesMax) { (reader: inout CanonicalReader) throws(CodecError) in
            StateTree.Entry(
                key: try reader.byteString("key", max: ProtocolLimits.stateKeyBytesMax),
                value: try reader.byteString("value", max: ProtocolLimits.stateValueBytesMax))
        }
        done = try reader.bool("done")
    }
}

extension SyncRequest: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(committedHeight)
        writer.u32(blocksMax)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        committedHeight = try reader.u64("committed height")
        blocksMax = try reader.u32("blocks max")
    }
}

extension SyncResponse: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.list(committed, max: Int(Self.blocksMax)) { $0.encode($1) }
        writer.list(commitCertificates, max: Int(Self.blocksMax)) { $0.encode($1) }
        writer.optional(commitEvidence)
        writer.list(certified, max: Int(Self.blocksMax)) { $0.encode($1) }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        committed = try reader.list("committed blocks", max: Int(Self.blocksMax)) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(Block.self)
        }
        commitCertificates = try reader.list("commit certificates", max: Int(Self.blocksMax)) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(QuorumCertificate.self)
        }
        commitEvidence = try reader.optional("commit evidence", CommitEvidence.self)
        certified = try reader.list("certified blocks", max: Int(Self.blocksMax)) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(Certified.self)
        }
        guard commitCertificates.count == committed.count else {
            throw .invalid(field: "sync response", reason: "\(committed.count) committed blocks with \(commitCertificates.count) certificates")
        }
        guard commitEvidence != nil || committed.isEmpty else {
            throw .invalid(field: "sync response", reason: "committed blocks without commit evidence")
        }
    }
}

extension SyncResponse.Certified: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(block)
        writer.encode(certificate)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        block = try reader.decode(Block.self)
        certificate = try reader.decode(QuorumCertificate.self)
    }
}

extension PeerMessage: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .consensus(let message):
            writer.u8(1)
            writer.encode(message)
        case .transactions(let transactions):
            writer.u8(2)
            writer.list(transactions, max: ProtocolLimits.gossipTransactionsMax) { $0.encode($1) }
        case .syncRequest(let request):
            writer.u8(3)
            writer.encode(request)
        case .syncResponse(let response):
            writer.u8(4)
            writer.encode(response)
        case .snapshotRequest(let request):
            writer.u8(5)
            writer.encode(request)
        case .snapshotChunk(let chunk):
            writer.u8(6)
            writer.encode(chunk)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        switch try reader.u8("peer message kind") {
        case 1: self = .consensus(try reader.decode(ConsensusMessage.self))
        case 2:
            self = .transactions(
                try reader.list("gossiped transactions", max: ProtocolLimits.gossipTransactionsMax) {
                    (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(SignedTransaction.self)
                })
        case 3: self = .syncRequest(try reader.decode(SyncRequest.self))
        case 4: self = .syncResponse(try reader.decode(SyncResponse.self))
        case 5: self = .snapshotRequest(try reader.decode(SnapshotRequest.self))
        case 6: self = .snapshotChunk(try reader.decode(SnapshotChunk.self))
        case let tag: throw .unknownTag(field: "peer message kind", tag: tag)
        }
    }
}
