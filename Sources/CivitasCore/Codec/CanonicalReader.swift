/// Reads Civitas' canonical binary encoding, refusing anything non-canonical.
public struct CanonicalReader: ~Copyable {
    @usableFromInline let bytes: [UInt8]
    @usableFromInline var offset: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    public var remaining: Int { bytes.count - offset }

    @inlinable
    mutating func take(_ count: Int, _ field: String) throws(CodecError) -> ArraySlice<UInt8> {
        guard count <= bytes.count - offset else { throw .truncated(field: field) }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    public mutating func u8(_ field: String) throws(CodecError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func bool(_ field: String) throws(CodecError) -> Bool {
        switch try u8(field) {
        case 0: return false
        case 1: return true
        case let other: throw .invalid(field: field, reason: "boolean byte \(other)")
        }
    }

    public mutating func u16(_ field: String) throws(CodecError) -> UInt16 {
        let slice = try take(2, field)
        return slice.reduce(0) { $0 << 8 | UInt16($1) }
    }

    public mutating func u32(_ field: String) throws(CodecError) -> UInt32 {
        let slice = try take(4, field)
        return slice.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public mutating func u64(_ field: String) throws(CodecError) -> UInt64 {
        guard 8 <= bytes.count - offset else { throw .truncated(field: field) }
        defer { offset += 8 }
        return bytes.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    public mutating func fixed(_ count: Int, _ field: String) throws(CodecError) -> [UInt8] {
        Array(try take(count, field))
    }

    public mutating func byteString(_ field: String, max: Int) throws(CodecError) -> [UInt8] {
        let length = Int(try u32(field))
        guard length <= max else { throw .oversize(field: field, length: length, max: max) }
        return Array(try take(length, field))
    }

    public mutating func string(_ field: String, max: Int) throws(CodecError) -> String {
        let raw = try byteString(field, max: max)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw .invalid(field: field, reason: "not UTF-8")
        }
        return text
    }

    public mutating func hash(_ field: String) throws(CodecError) -> Hash {
        Hash(bytes: try take(Hash.byteCount, field))
    }

    public mutating func decode<T: CanonicalDecodable>(_: T.Type) throws(CodecError) -> T {
        try T(from: &self)
    }

    public mutating func list<T>(
        _ field: String, max: Int, _ element: (inout CanonicalReader) throws(CodecError) -> T
    ) throws(CodecError) -> [T] {
        let count = Int(try u32(field))
        guard count <= max else { throw .oversize(field: field, length: count, max: max) }
        // Each element takes at least one byte, so a count above what is left is a lie
        // that would otherwise make us reserve memory for it.
        guard count <= remaining else { throw .truncated(field: field) }
        var values: [T] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try element(&self)) }
        return values
    }

    public func finish() throws(CodecError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }
}

public protocol CanonicalEncodable {
    func encode(to writer: inout CanonicalWriter)
}

public protocol CanonicalDecodable {
    init(from reader: inout CanonicalReader) throws(CodecError)
}

public typealias CanonicalCodable = CanonicalEncodable & CanonicalDecodable

extension CanonicalEncodable {
    public var canonicalBytes: [UInt8] {
        var writer = CanonicalWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

extension CanonicalDecodable {
    /// Decodes exactly one value from `bytes`; trailing bytes are an error.
    public init(canonicalBytes bytes: [UInt8]) throws(CodecError) {
        var reader = CanonicalReader(bytes)
        self = try Self(from: &reader)
        try reader.finish()
    }
}

extension CanonicalWriter {
    /// `0x00`, or `0x01` followed by the value.
    public mutating func optional<T: CanonicalEncodable>(_ value: T?) {
        if let value {
            u8(1)
            encode(value)
        } else {
            u8(0)
        }
    }
}

extension CanonicalReader {
    /// The inverse of `CanonicalWriter.optional`; any tag but 0 or 1 is an error.
    public mutating func optional<T: CanonicalDecodable>(_ field: String, _: T.Type) throws(CodecError) -> T? {
        switch try u8(field) {
        case 0: return nil
        case 1: return try decode(T.self)
        case let tag: throw .unknownTag(field: field, tag: tag)
        }
    }
}
