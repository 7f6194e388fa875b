import CivitasCore
import CivitasModules
import CivitasNode
import CivitasStorage

/// The JSON shapes of the API (see `docs/openapi.json`). Byte strings are lowercase hex;
/// integers that may exceed 2^53 are still JSON numbers, as 64-bit unsigned values.
public struct EventView: Codable, Sendable, Equatable {
    public var module: String
    public var name: String
    public var attributes: [String: String]

    init(_ event: Event) {
        module = event.module
        name = event.name
        attributes = Dictionary(event.attributes.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }
}

public struct ReceiptView: Codable, Sendable {
    public var transactionId: String
    public var success: Bool
    public var errorCode: String?
    public var errorMessage: String?
    public var gasUsed: UInt64
    public var events: [EventView]
    public var height: UInt64
    public var index: UInt32
    public var blockHash: String

    init(_ outcome: TransactionOutcome) {
        transactionId = outcome.id.hex
        switch outcome.receipt.status {
        case .success:
            success = true
        case .failure(let code, let message):
            success = false
            errorCode = code
            errorMessage = message
        }
        gasUsed = outcome.receipt.gasUsed
        events = outcome.receipt.events.map(EventView.init)
        height = outcome.location.height
        index = outcome.location.index
        blockHash = outcome.blockHash.hex
    }
}

public struct TransactionView: Codable, Sendable {
    public struct CallView: Codable, Sendable {
        public var module: String
        public var method: String
        public var arguments: String
    }

    public var id: String
    public var status: String
    public var chainId: String
    public var sender: String
    public var nonce: UInt64
    public var expiryHeight: UInt64
    public var gasLimit: UInt64
    public var call: CallView
    public var signature: String
    public var receipt: ReceiptView?

    init(id: Hash, transaction: SignedTransaction, receipt: ReceiptView?, status: String) {
        self.id = id.hex
        self.status = status
        chainId = transaction.body.chainId
        sender = transaction.body.sender.description
        nonce = transaction.body.nonce
        expiryHeight = transaction.body.expiryHeight
        gasLimit = transaction.body.gasLimit
        call = CallView(
            module: transaction.body.call.module, method: transaction.body.call.method,
            arguments: transaction.body.call.arguments.hexString)
        signature = transaction.signature.bytes.hexString
        self.receipt = receipt
    }
}

public struct SubmitResult: Codable, Sendable {
    public var id: String
    /// `pending` (admitted, not yet committed), `committed` or `timeout` (waited, not yet
    /// committed: the transaction may still commit later).
    public var status: String
    public var receipt: ReceiptView?
}

public struct BatchResult: Codable, Sendable {
    public struct Item: Codable, Sendable {
        public var id: String?
        public var status: String
        public var errorCode: String?
        public var errorMessage: String?
    }
    public var accepted: Int
    public var rejected: Int
    public var results: [Item]
}

public struct CertificateView: Codable, Sendable {
    public var epoch: UInt64
    public var round: UInt64
    public var signers: [UInt16]
    public var encoded: String
}

public struct BlockView: Codable, Sendable {
    public var hash: String
    public var height: UInt64
    public var epoch: UInt64
    public var round: UInt64
    public var parent: String
    public var proposer: UInt16
    public var timestampMilliseconds: UInt64
    public var transactionCount: UInt32
    public var transactionsRoot: String
    public var receiptsRoot: String
    public var stateRoot: String
    public var transactions: [String]
    public var header: String
    public var certificate: CertificateView?

    init(_ committed: CommittedBlock, transactionIds: [Hash]) {
        let header = committed.block.header
        hash = committed.hash.hex
        height = header.height
        epoch = header.epoch
        round = header.round
        parent = header.parent.hex
        proposer = header.proposer
        timestampMilliseconds = header.timestampMilliseconds
        transactionCount = header.transactionCount
        transactionsRoot = header.transactionsRoot.hex
        receiptsRoot = header.receiptsRoot.hex
        stateRoot = header.stateRoot.hex
        transactions = transactionIds.map(\.hex)
        self.header = header.canonicalBytes.hexString
        certificate = committed.certificate.map {
            CertificateView(
                epoch: $0.vote.epoch, round: $0.vote.round, signers: $0.signatures.map(\.validator),
                encoded: $0.canonicalBytes.hexString)
        }
    }
}

public struct StatusView: Codable, Sendable {
    public var chainId: String
    public var hashSuite: String
    public var height: UInt64
    public var blockHash: String
    public var stateRoot: String
    public var genesisHash: String
    public var mempoolTransactions: Int
    public var mempoolBytes: Int
    public var validatorIndex: UInt16?
    public var round: UInt64
    public var epoch: UInt64
    public var version: String
    /// Absent for a store without background work.
    public var storage: StorageView?

    init(_ status: NodeStatus) {
        chainId = status.chainId
        hashSuite = status.hashSuite.name
        height = status.height
        blockHash = status.blockHash.hex
        stateRoot = status.stateRoot.hex
        genesisHash = status.genesisHash.hex
        mempoolTransactions = status.mempoolTransactions
        mempoolBytes = status.mempoolBytes
        validatorIndex = status.validatorIndex
        round = status.round
        epoch = status.epoch
        version = CivitasVersion.string
        storage = status.storage.map(StorageView.init)
    }
}

/// The store's background work still owed (`StoreBacklog`).
public struct StorageView: Codable, Sendable {
    public var pendingCompactionBytes: UInt64
    public var level0Files: Int
    public var runningCompactions: Int
    public var runningFlushes: Int
    /// Nothing owed and nothing running.
    public var settled: Bool

    init(_ backlog: StoreBacklog) {
        pendingCompactionBytes = backlog.pendingCompactionBytes
        level0Files = backlog.level0Files
        runningCompactions = backlog.runningCompactions
        runningFlushes = backlog.runningFlushes
        settled = backlog.isSettled
    }
}

public struct AccountView: Codable, Sendable {
    public var address: String
    public var organisation: String?
    public var nonce: UInt64
    public var balance: UInt64
}

public struct ValueView: Codable, Sendable {
    public var key: String
    public var exists: Bool
    public var value: String?
    public var height: UInt64
    public var proof: ProofDocument?
}

public struct ChainEventView: Codable, Sendable {
    public struct TransactionEventsView: Codable, Sendable {
        public var transactionId: String
        public var success: Bool
        public var events: [EventView]
    }
    public var height: UInt64
    public var blockHash: String
    public var stateRoot: String
    public var timestampMilliseconds: UInt64
    public var proposer: UInt16
    public var transactionCount: Int
    public var transactions: [TransactionEventsView]

    init(_ event: ChainEvent) {
        height = event.height
        blockHash = event.blockHash.hex
        stateRoot = event.stateRoot.hex
        timestampMilliseconds = event.timestampMilliseconds
        proposer = event.proposer
        transactionCount = event.transactionCount
        transactions = event.transactions.map {
            .init(transactionId: $0.transactionId.hex, success: $0.success, events: $0.events.map(EventView.init))
        }
    }
}

extension ChainEventView {
    /// The JSON `JSONEncoder` gives with sorted keys and unescaped slashes, written
    /// directly: a block of thousands of transactions goes to every subscriber, and the
    /// encoder's boxing cost more than the rest of the event stream.
    public var json: [UInt8] {
        var out = JSONText()
        out.bytes.reserveCapacity(128 + transactions.count * 120)
        out.raw("{\"blockHash\":")
        out.string(blockHash)
        out.raw(",\"height\":\(height),\"proposer\":\(proposer),\"stateRoot\":")
        out.string(stateRoot)
        out.raw(",\"timestampMilliseconds\":\(timestampMilliseconds),\"transactionCount\":\(transactionCount),\"transactions\":[")
        for (index, transaction) in transactions.enumerated() {
            if index > 0 { out.raw(",") }
            out.raw("{\"events\":[")
            for (position, event) in transaction.events.enumerated() {
                if position > 0 { out.raw(",") }
                out.raw("{\"attributes\":{")
                for (number, key) in event.attributes.keys.sorted().enumerated() {
                    if number > 0 { out.raw(",") }
                    out.string(key)
                    out.raw(":")
                    out.string(event.attributes[key]!)
                }
                out.raw("},\"module\":")
                out.string(event.module)
                out.raw(",\"name\":")
                out.string(event.name)
                out.raw("}")
            }
            out.raw(transaction.success ? "],\"success\":true,\"transactionId\":" : "],\"success\":false,\"transactionId\":")
            out.string(transaction.transactionId)
            out.raw("}")
        }
        out.raw("]}")
        return out.bytes
    }
}

/// JSON text written byte by byte.
struct JSONText {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// A JSON string: quotes, backslashes and control characters escaped (RFC 8259 §7).
    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
            case 10: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
            case 13: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
            case 9: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
            case 8: bytes.append(contentsOf: [92, UInt8(ascii: "b")])
            case 12: bytes.append(contentsOf: [92, UInt8(ascii: "f")])
            case 0..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, digits[Int(byte >> 4)], digits[Int(byte & 15)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

public enum CivitasVersion {
    public static let string = "0.1.0"
}

public struct ContractView: Codable, Sendable {
    public struct VersionView: Codable, Sendable {
        public var version: UInt64
        public var codeHash: String
        public var height: UInt64
    }

    public var address: String
    public var owner: String
    public var policy: String
    public var version: UInt64
    public var codeHash: String
    public var codeSize: UInt32
    public var deployedAt: UInt64
    public var upgradedAt: UInt64
    /// Every version from the first, each with the height it took effect.
    public var versions: [VersionView]
}

/// Body of `POST /v1/contracts/{address}/query`: arguments as JSON values, or as the
/// encoded bytes in hex.
public struct ContractQueryRequest: Codable, Sendable {
    public var method: String
    public var args: [ContractValue]?
    public var argsHex: String?
    public var caller: String?
    public var gasLimit: UInt64?

    public init(method: String, args: [ContractValue]? = nil, argsHex: String? = nil, caller: String? = nil, gasLimit: UInt64? = nil) {
        self.method = method
        self.args = args
        self.argsHex = argsHex
        self.caller = caller
        self.gasLimit = gasLimit
    }
}

public struct ContractQueryView: Codable, Sendable {
    public var height: UInt64
    public var success: Bool
    /// The return data as values, when it is a value sequence.
    public var output: [ContractValue]?
    public var outputHex: String
    public var gasUsed: UInt64
    public var events: [EventView]
    public var logs: [String]
    public var errorCode: String?
    public var errorMessage: String?

    init(_ result: ContractQueryResult, height: UInt64) {
        self.height = height
        success = result.error == nil
        output = nil
        if result.error == nil, let values = try? ContractValue.decode(result.output) { output = values }
        outputHex = result.output.hexString
        gasUsed = result.gasUsed
        events = result.events.map(EventView.init)
        logs = result.logs
        errorCode = result.error?.code
        errorMessage = result.error?.message
    }
}
