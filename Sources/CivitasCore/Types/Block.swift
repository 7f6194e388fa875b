/// What validators agree on. The hash of its encoding (domain `civitas.block`) is the
/// block id; the header commits to the transactions, the receipts and the state root
/// after executing them, so a certificate over the header certifies all three.
public struct BlockHeader: Hashable, Sendable {
    public static let version: UInt8 = 1

    public var chainId: String
    public var epoch: UInt64
    public var height: UInt64
    public var round: UInt64
    public var parent: Hash
    /// Index of the proposer in the epoch's validator set.
    public var proposer: UInt16
    /// The proposer's clock, for people; nothing in execution reads it.
    public var timestampMilliseconds: UInt64
    public var transactionCount: UInt32
    public var transactionsRoot: Hash
    public var receiptsRoot: Hash
    public var stateRoot: Hash

    public init(
        chainId: String, epoch: UInt64, height: UInt64, round: UInt64, parent: Hash, proposer: UInt16,
        timestampMilliseconds: UInt64, transactionCount: UInt32, transactionsRoot: Hash, receiptsRoot: Hash,
        stateRoot: Hash
    ) {
        self.chainId = chainId
        self.epoch = epoch
        self.height = height
        self.round = round
        self.parent = parent
        self.proposer = proposer
        self.timestampMilliseconds = timestampMilliseconds
        self.transactionCount = transactionCount
        self.transactionsRoot = transactionsRoot
        self.receiptsRoot = receiptsRoot
        self.stateRoot = stateRoot
    }

    public func hash(using hasher: some HashFunction) -> Hash {
        hasher.hash(.blockHeader, canonicalBytes)
    }
}

extension BlockHeader: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u8(Self.version)
        writer.string(chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.u64(epoch)
        writer.u64(height)
        writer.u64(round)
        writer.hash(parent)
        writer.u16(proposer)
        writer.u64(timestampMilliseconds)
        writer.u32(transactionCount)
        writer.hash(transactionsRoot)
        writer.hash(receiptsRoot)
        writer.hash(stateRoot)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        let version = try reader.u8("header version")
        guard version == Self.version else { throw .unknownTag(field: "header version", tag: version) }
        chainId = try reader.string("chain id", max: ProtocolLimits.chainIdBytesMax)
        epoch = try reader.u64("epoch")
        height = try reader.u64("height")
        round = try reader.u64("round")
        parent = try reader.hash("parent")
        proposer = try reader.u16("proposer")
        timestampMilliseconds = try reader.u64("timestamp")
        transactionCount = try reader.u32("transaction count")
        transactionsRoot = try reader.hash("transactions root")
        receiptsRoot = try reader.hash("receipts root")
        stateRoot = try reader.hash("state root")
    }
}

/// A header with its transactions.
public struct Block: Hashable, Sendable {
    public var header: BlockHeader
    public var transactions: [SignedTransaction]

    public init(header: BlockHeader, transactions: [SignedTransaction]) {
        self.header = header
        self.transactions = transactions
    }
}

extension Block: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(header)
        writer.list(transactions, max: ProtocolLimits.blockTransactionsMax) { $0.encode($1) }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        header = try reader.decode(BlockHeader.self)
        transactions = try reader.list("block transactions", max: ProtocolLimits.blockTransactionsMax) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(SignedTransaction.self)
        }
        guard transactions.count == Int(header.transactionCount) else {
            throw .invalid(field: "block", reason: "header counts \(header.transactionCount) transactions, body has \(transactions.count)")
        }
    }
}
