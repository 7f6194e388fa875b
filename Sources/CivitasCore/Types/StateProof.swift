/// Proof that a key has a value, or has none, in a state tree with a given root.
///
/// The state tree is a binary sparse Merkle tree over `H(civitas.state.key, key)`, in
/// canonical form: an empty subtree hashes to zero and a subtree holding one leaf is that
/// leaf, lifted to the subtree's root. So a proof walks from the root to where the
/// key's path ends (a leaf or an empty subtree), giving the sibling hash at each level.
public struct StateProof: Hashable, Sendable {
    public struct Leaf: Hashable, Sendable {
        public var keyHash: Hash
        public var valueHash: Hash
        public init(keyHash: Hash, valueHash: Hash) {
            self.keyHash = keyHash
            self.valueHash = valueHash
        }
    }

    public var key: [UInt8]
    /// The value, or nil for a proof of absence.
    public var value: [UInt8]?
    /// For a proof of absence whose path ends at another key's leaf: that leaf.
    public var otherLeaf: Leaf?
    /// Sibling hashes from the root (index 0) down to the leaf's level.
    public var siblings: [Hash]

    public init(key: [UInt8], value: [UInt8]?, otherLeaf: Leaf?, siblings: [Hash]) {
        self.key = key
        self.value = value
        self.otherLeaf = otherLeaf
        self.siblings = siblings
    }

    /// True when this proof shows `key` ↦ `value` (or its absence) under `root`.
    public func verify(root: Hash, using hasher: some HashFunction) -> Bool {
        guard siblings.count <= 256 else { return false }
        let keyHash = hasher.hash(.stateKey, key)
        var node: Hash
        if let value {
            guard otherLeaf == nil else { return false }
            node = hasher.hash(.stateLeaf, keyHash, hasher.hash(.stateValue, value))
        } else if let otherLeaf {
            guard otherLeaf.keyHash != keyHash else { return false }
            for depth in 0..<siblings.count where otherLeaf.keyHash.bit(depth) != keyHash.bit(depth) {
                return false
            }
            node = hasher.hash(.stateLeaf, otherLeaf.keyHash, otherLeaf.valueHash)
        } else {
            node = .zero
        }
        for depth in stride(from: siblings.count - 1, through: 0, by: -1) {
            node = keyHash.bit(depth)
                ? hasher.hash(.stateNode, siblings[depth], node)
                : hasher.hash(.stateNode, node, siblings[depth])
        }
        return node == root
    }
}

extension StateProof: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.byteString(key, max: ProtocolLimits.stateKeyBytesMax)
        if let value {
            writer.u8(1)
            writer.byteString(value, max: ProtocolLimits.stateValueBytesMax)
        } else if let otherLeaf {
            writer.u8(2)
            writer.hash(otherLeaf.keyHash)
            writer.hash(otherLeaf.valueHash)
        } else {
            writer.u8(0)
        }
        writer.list(siblings, max: 256) { $0.hash($1) }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        key = try reader.byteString("proof key", max: ProtocolLimits.stateKeyBytesMax)
        switch try reader.u8("proof kind") {
        case 0:
            value = nil
            otherLeaf = nil
        case 1:
            value = try reader.byteString("proof value", max: ProtocolLimits.stateValueBytesMax)
            otherLeaf = nil
        case 2:
            value = nil
            otherLeaf = Leaf(keyHash: try reader.hash("leaf key hash"), valueHash: try reader.hash("leaf value hash"))
        case let tag:
            throw .unknownTag(field: "proof kind", tag: tag)
        }
        siblings = try reader.list("proof siblings", max: 256) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.hash("sibling")
        }
    }
}
