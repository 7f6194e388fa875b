import CivitasCore

/// Where a stored node of the state tree is: the version that wrote it and its hash.
///
/// Nodes are stored under `s` + version + hash, so the nodes one update writes lie
/// together and each update's lie after the last one's: RocksDB appends them rather than
/// merging them into the key space at random (ADR 0011). The hash still names the
/// content: two refs with the same hash hold the same subtree, whatever their versions.
public struct StateNodeRef: Hashable, Sendable {
    public var version: UInt64
    public var hash: Hash
    public init(version: UInt64, hash: Hash) {
        self.version = version
        self.hash = hash
    }
}

/// A node of the sparse Merkle tree as stored under `s` + version + hash.
///
/// A leaf's hash depends only on its key and value, an internal node's on its children,
/// so an unchanged subtree is shared by every version that contains it and any
/// historical root can be read.
///
/// The tree is binary (its hashes and proofs are those of a binary tree), but it is
/// stored in steps of four levels: an internal node holds the sixteen subtrees four
/// levels below it, and the three levels between are hashed when needed, never stored.
/// A key written then costs a quarter of the node writes and reads of a node per level.
enum StateNode {
    /// `children[i]` is the subtree whose path continues with the four bits of `i`
    /// (most significant first). Inline, not a heap array: a tree update decodes and
    /// rewrites several nodes per key, and an allocation each (over a kilobyte, beyond
    /// the allocator's per-thread cache) cost more than the update itself.
    typealias Children = InlineArray<16, Child>

    /// The hashes of the binary subtrees inside a full node, above its children: the two
    /// halves, the four quarters, then the eight pairs, each level left to right (subtree
    /// `i` of a heap numbering the node 1 and its children 16 to 31 is at `i - 2`). In a
    /// full node each of them joins two non-empty subtrees, so each is an internal node's
    /// hash. Held only in memory, by the node cache (`StateNodeCache`).
    typealias InnerHashes = InlineArray<14, Hash>

    case internalNode(children: Children)
    case leaf(keyHash: Hash, valueHash: Hash, key: [UInt8], value: [UInt8])

    enum Kind: UInt8 {
        case empty = 0
        case leaf = 1
        case internalNode = 2
    }

    /// A subtree as its parent names it: its hash, and the version it is stored under.
    /// A leaf child carries its key hash too, so an update never reads a leaf to learn
    /// whether it is the key being written (replace it) or another one (move it down,
    /// unchanged: neither its hash nor its place in the store depends on its depth).
    struct Child: Equatable {
        var kind: Kind
        var hash: Hash
        /// The version the node is stored under; zero for an empty subtree.
        var version: UInt64 = 0
        /// The leaf's key hash; zero for the other kinds.
        var keyHash: Hash = .zero
        static let empty = Child(kind: .empty, hash: .zero)

        var ref: StateNodeRef { StateNodeRef(version: version, hash: hash) }
    }

    static let fanout = 16
    static let internalTag: UInt8 = 3
    static let leafTag: UInt8 = 2

    /// `children` is inout, though only read: borrowed, the caller's slots were copied
    /// first (1.3 KB per node an update writes). Written through a raw pointer: field by
    /// field through `CanonicalWriter`, encoding was 1.4% of a 1M-key network's machine
    /// (docs/benchmarks.md, session 13), for a layout this simple.
    static func encoded(children: inout Children) -> [UInt8] {
        var bitmap: UInt16 = 0
        var size = 3
        for slot in 0..<fanout where children[slot].kind != .empty {
            bitmap |= 1 << UInt16(slot)
            size += children[slot].kind == .leaf ? leafChildBytes : internalChildBytes
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            out.storeBytes(of: internalTag, as: UInt8.self)
            out.storeBytes(of: bitmap.bigEndian, toByteOffset: 1, as: UInt16.self)
            var offset = 3
            for slot in 0..<fanout where children[slot].kind != .empty {
                out.storeBytes(of: children[slot].kind.rawValue, toByteOffset: offset, as: UInt8.self)
                children[slot].hash.store(to: out + offset + 1)
                out.storeBytes(of: children[slot].version.bigEndian, toByteOffset: offset + 33, as: UInt64.self)
                if children[slot].kind == .leaf {
                    children[slot].keyHash.store(to: out + offset + internalChildBytes)
                    offset += leafChildBytes
                } else {
                    offset += internalChildBytes
                }
            }
            precondition(offset == size)
            count = size
        }
    }

    /// kind ‖ hash ‖ version, and a leaf's key hash after them.
    static let internalChildBytes = 41
    static let leafChildBytes = 73

    /// The children of an encoded internal node, decoded into `children` (all empty on
    /// entry): an update decodes a node per stored level of each written key, and
    /// building it in the caller's storage spares copying the 1.3 KB of slots. Read
    /// through a raw pointer for the reason given at `encoded`, with the checks (and
    /// errors) of `CanonicalReader`.
    static func decodeChildren(of bytes: [UInt8], into children: inout Children) throws(CodecError) {
        // `withUnsafeBytes` rethrows untyped errors: the codec's come back as a result.
        let result = bytes.withUnsafeBytes { raw in Result { () throws(CodecError) in try decodeChildren(of: raw, into: &children) } }
        try result.get()
    }

    static func decodeChildren(of raw: UnsafeRawBufferPointer, into children: inout Children) throws(CodecError) {
        guard raw.count >= 1 else { throw .truncated(field: "node tag") }
        let tag = raw[0]
        guard tag == internalTag else { throw .unknownTag(field: "internal node tag", tag: tag) }
        guard raw.count >= 3 else { throw .truncated(field: "node child bitmap") }
        let bitmap = UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 1, as: UInt16.self))
        guard bitmap != 0 else { throw .invalid(field: "node child bitmap", reason: "an internal node without children") }
        var offset = 3
        for slot in 0..<fanout where bitmap & (1 << UInt16(slot)) != 0 {
            guard offset < raw.count else { throw .truncated(field: "child kind") }
            guard let kind = Kind(rawValue: raw[offset]), kind != .empty else {
                throw .unknownTag(field: "child kind", tag: raw[offset])
            }
            guard offset + 33 <= raw.count else { throw .truncated(field: "child hash") }
            guard offset + internalChildBytes <= raw.count else { throw .truncated(field: "child version") }
            let hash = Hash(raw: UnsafeRawBufferPointer(rebasing: raw[offset + 1..<offset + 33]))
            let version = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 33, as: UInt64.self))
            var keyHash = Hash.zero
            if kind == .leaf {
                guard offset + leafChildBytes <= raw.count else { throw .truncated(field: "child key hash") }
                keyHash = Hash(raw: UnsafeRawBufferPointer(rebasing: raw[offset + internalChildBytes..<offset + leafChildBytes]))
                offset += leafChildBytes
            } else {
                offset += internalChildBytes
            }
            children[slot] = Child(kind: kind, hash: hash, version: version, keyHash: keyHash)
        }
        guard offset == raw.count else { throw .trailingBytes(count: raw.count - offset) }
    }

    /// Reads the children of an encoded internal node one slot at a time, in increasing
    /// slot order, decoding only the slots asked for: finding the one or two children an
    /// update goes through needs neither the other slots' hashes nor sixteen slots of room.
    /// Malformed bytes give no child.
    struct ChildCursor {
        let raw: UnsafeRawBufferPointer
        private let bitmap: UInt16
        private var offset = 3
        private var nextSlot = 0

        init(_ raw: UnsafeRawBufferPointer) {
            self.raw = raw
            bitmap = raw.count >= 3 && raw[0] == internalTag ? UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 1, as: UInt16.self)) : 0
        }

        /// The child at `slot` (no lower than any slot asked before), or nil if the slot is
        /// empty.
        mutating func child(at slot: Int) -> Child? {
            precondition(slot >= nextSlot && slot < fanout, "slots are asked for in increasing order")
            while nextSlot < slot {
                if bitmap & (1 << UInt16(nextSlot)) != 0 {
                    guard offset < raw.count else { return nil }
                    offset += raw[offset] == Kind.leaf.rawValue ? leafChildBytes : internalChildBytes
                }
                nextSlot += 1
            }
            guard bitmap & (1 << UInt16(slot)) != 0, offset + internalChildBytes <= raw.count,
                let kind = Kind(rawValue: raw[offset]), kind != .empty
            else { return nil }
            let hash = Hash(raw: UnsafeRawBufferPointer(rebasing: raw[offset + 1..<offset + 33]))
            let version = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 33, as: UInt64.self))
            var keyHash = Hash.zero
            if kind == .leaf {
                guard offset + leafChildBytes <= raw.count else { return nil }
                keyHash = Hash(raw: UnsafeRawBufferPointer(rebasing: raw[offset + internalChildBytes..<offset + leafChildBytes]))
            }
            return Child(kind: kind, hash: hash, version: version, keyHash: keyHash)
        }
    }

    static func encodedLeaf(keyHash: Hash, valueHash: Hash, key: [UInt8], value: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 80 + key.count + value.count)
        writer.u8(leafTag)
        writer.hash(keyHash)
        writer.hash(valueHash)
        writer.byteString(key, max: ProtocolLimits.stateKeyBytesMax)
        writer.byteString(value, max: ProtocolLimits.stateValueBytesMax)
        return writer.bytes
    }

    init(decoding bytes: [UInt8]) throws(CodecError) {
        if bytes.first == Self.internalTag {
            var children = Children(repeating: .empty)
            try Self.decodeChildren(of: bytes, into: &children)
            self = .internalNode(children: children)
            return
        }
        var reader = CanonicalReader(bytes)
        let tag = try reader.u8("node tag")
        guard tag == Self.leafTag else { throw .unknownTag(field: "node tag", tag: tag) }
        self = .leaf(
            keyHash: try reader.hash("leaf key hash"), valueHash: try reader.hash("leaf value hash"),
            key: try reader.byteString("leaf key", max: ProtocolLimits.stateKeyBytesMax),
            value: try reader.byteString("leaf value", max: ProtocolLimits.stateValueBytesMax))
        try reader.finish()
    }
}
