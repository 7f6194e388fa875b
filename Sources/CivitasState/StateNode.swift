import CivitasCore

/// A node of the sparse Merkle tree as stored under `n` + its hash.
///
/// Nodes are content-addressed: a leaf's hash depends only on its key and value, an
/// internal node's on its children, so an unchanged subtree is shared by every version
/// that contains it and any historical root can be read.
enum StateNode: Equatable {
    case internalNode(left: Child, right: Child)
    case leaf(keyHash: Hash, valueHash: Hash, key: [UInt8], value: [UInt8])

    enum Kind: UInt8 {
        case empty = 0
        case leaf = 1
        case internalNode = 2
    }

    struct Child: Equatable {
        var kind: Kind
        var hash: Hash
        static let empty = Child(kind: .empty, hash: .zero)
    }

    func encoded() -> [UInt8] {
        var writer = CanonicalWriter(capacity: 80)
        switch self {
        case .internalNode(let left, let right):
            writer.u8(1)
            writer.u8(left.kind.rawValue)
            writer.hash(left.hash)
            writer.u8(right.kind.rawValue)
            writer.hash(right.hash)
        case .leaf(let keyHash, let valueHash, let key, let value):
            writer.u8(2)
            writer.hash(keyHash)
            writer.hash(valueHash)
            writer.byteString(key, max: ProtocolLimits.stateKeyBytesMax)
            writer.byteString(value, max: ProtocolLimits.stateValueBytesMax)
        }
        return writer.bytes
    }

    init(decoding bytes: [UInt8]) throws(CodecError) {
        var reader = CanonicalReader(bytes)
        switch try reader.u8("node tag") {
        case 1:
            func child(_ reader: inout CanonicalReader) throws(CodecError) -> Child {
                let tag = try reader.u8("child kind")
                guard let kind = Kind(rawValue: tag) else { throw .unknownTag(field: "child kind", tag: tag) }
                return Child(kind: kind, hash: try reader.hash("child hash"))
            }
            self = .internalNode(left: try child(&reader), right: try child(&reader))
        case 2:
            self = .leaf(
                keyHash: try reader.hash("leaf key hash"), valueHash: try reader.hash("leaf value hash"),
                key: try reader.byteString("leaf key", max: ProtocolLimits.stateKeyBytesMax),
                value: try reader.byteString("leaf value", max: ProtocolLimits.stateValueBytesMax))
        case let tag:
            throw .unknownTag(field: "node tag", tag: tag)
        }
        try reader.finish()
    }
}
