/// Appends values in Civitas' canonical binary encoding (see `docs/protocol.md`).
///
/// Integers are fixed-width big-endian; variable-length byte strings and lists carry a
/// 4-byte big-endian length. There is no varint, so there is no non-minimal length.
public struct CanonicalWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable public mutating func u8(_ value: UInt8) { bytesAppend(value) }
    public mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    @inlinable public mutating func u16(_ value: UInt16) { bytesAppend(bigEndian: value) }

    public mutating func u32(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    /// One append of eight bytes, not eight appends: a tree node writes one per child.
    @inlinable public mutating func u64(_ value: UInt64) { bytesAppend(bigEndian: value) }

    /// Bytes whose length both sides know (hashes, fixed-size keys): no prefix.
    public mutating func fixed<C: Collection>(_ value: C) where C.Element == UInt8 {
        bytes.append(contentsOf: value)
    }

    /// A length-prefixed byte string. The caller's limit is checked here too, so a
    /// value that could never be decoded is never written.
    public mutating func byteString<C: Collection>(_ value: C, max: Int) where C.Element == UInt8 {
        precondition(value.count <= max, "encoding a byte string over its limit")
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ value: String, max: Int) {
        byteString(Array(value.utf8), max: max)
    }

    public mutating func hash(_ value: Hash) { value.append(to: &bytes) }

    public mutating func encode<T: CanonicalEncodable>(_ value: T) { value.encode(to: &self) }

    public mutating func list<T>(_ values: [T], max: Int, _ element: (inout CanonicalWriter, T) -> Void) {
        precondition(values.count <= max, "encoding a list over its limit")
        u32(UInt32(values.count))
        for value in values { element(&self, value) }
    }

    @usableFromInline mutating func bytesAppend(_ value: UInt8) { bytes.append(value) }

    @usableFromInline mutating func bytesAppend<T: FixedWidthInteger>(bigEndian value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
