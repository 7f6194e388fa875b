/// Bytes as a dictionary key (a state key, a public key), hashed as one block.
///
/// `[UInt8]`'s own hashing feeds the hasher a byte at a time: building a view of a few
/// blocks' writes was slow with it, and at saturation the per-byte calls from the
/// dictionaries keyed by state keys (the value cache, a block's pending writes) were 2.8%
/// of the machine (docs/benchmarks.md, session 18).
public struct ByteKey: Hashable, Sendable {
    public let bytes: [UInt8]

    @inlinable public init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inlinable public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }

    @inlinable public static func == (lhs: ByteKey, rhs: ByteKey) -> Bool { lhs.bytes == rhs.bytes }
}
