/// The hash suites a chain can choose at genesis. The raw value is the byte written in
/// the genesis encoding.
public enum HashSuiteID: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case sha256 = 1
    case sm3 = 2

    public var name: String {
        switch self {
        case .sha256: "sha256"
        case .sm3: "sm3"
        }
    }

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    public var description: String { name }
}

/// A 256-bit hash function. `CivitasCrypto` provides SHA-256 and SM3; the core only
/// needs the shape so that proofs and certificates can be checked generically.
public protocol HashFunction: Sendable {
    var suite: HashSuiteID { get }
    func hash(_ bytes: [UInt8]) -> Hash
    /// The same hash over borrowed bytes, so callers can hash what they build on the stack.
    func hash(raw bytes: UnsafeRawBufferPointer) -> Hash
}

/// Domain separation: every hashed object starts with its own ASCII label and a zero
/// byte, so a transaction body can never be mistaken for a block header or a tree node.
public enum HashDomain: String, Sendable, CaseIterable {
    case transaction = "civitas.tx"
    case blockHeader = "civitas.block"
    case receipt = "civitas.receipt"
    case vote = "civitas.vote"
    case identity = "civitas.identity"
    case stateKey = "civitas.state.key"
    case stateValue = "civitas.state.value"
    case stateLeaf = "civitas.state.leaf"
    case stateNode = "civitas.state.node"
    case listLeaf = "civitas.list.leaf"
    case listNode = "civitas.list.node"
    case genesis = "civitas.genesis"
    case proposal = "civitas.proposal"
    case timeout = "civitas.timeout"
    case batch = "civitas.batch"
    case governance = "civitas.governance"
    case contractCode = "civitas.contract.code"
    case contractAddress = "civitas.contract.address"

    public var prefix: [UInt8] { Array(rawValue.utf8) + [0] }
}

extension HashFunction {
    public func hash(_ domain: HashDomain, _ bytes: [UInt8]) -> Hash {
        var input: [UInt8] = []
        input.reserveCapacity(domain.rawValue.utf8.count + 1 + bytes.count)
        input.append(contentsOf: domain.rawValue.utf8)
        input.append(0)
        input.append(contentsOf: bytes)
        return hash(input)
    }

    public func hash(raw bytes: UnsafeRawBufferPointer) -> Hash { hash(Array(bytes)) }

    /// Two hashes under a domain, built on the stack: the state tree hashes pairs of
    /// children several times per key written.
    public func hash(_ domain: HashDomain, _ first: Hash, _ second: Hash) -> Hash {
        var label = domain.rawValue
        return label.withUTF8 { label in
            withUnsafeTemporaryAllocation(byteCount: label.count + 1 + 2 * Hash.byteCount, alignment: 8) { buffer in
                buffer.copyMemory(from: UnsafeRawBufferPointer(label))
                buffer[label.count] = 0
                first.store(to: buffer.baseAddress!.advanced(by: label.count + 1))
                second.store(to: buffer.baseAddress!.advanced(by: label.count + 1 + Hash.byteCount))
                return hash(raw: UnsafeRawBufferPointer(buffer))
            }
        }
    }

    /// The root of a binary Merkle tree over `leaves` (transaction ids, receipts), with
    /// RFC 6962's shape: the left subtree holds the largest power of two below the count.
    public func merkleRoot(_ leaves: [Hash]) -> Hash {
        if leaves.isEmpty { return .zero }
        return merkleRoot(leaves[...].map { hash(.listLeaf, $0.bytes) }[...])
    }

    private func merkleRoot(_ nodes: ArraySlice<Hash>) -> Hash {
        if nodes.count == 1 { return nodes.first! }
        var split = 1
        while split * 2 < nodes.count { split *= 2 }
        let left = merkleRoot(nodes.prefix(split))
        let right = merkleRoot(nodes.dropFirst(split))
        return hash(.listNode, left, right)
    }
}
