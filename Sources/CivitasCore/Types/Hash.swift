/// A 32-byte digest of the chain's hash suite (SHA-256 or SM3).
///
/// Held as four big-endian words so that comparing, hashing and copying one never
/// allocates: the state tree handles millions of them per block.
public struct Hash: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public static let zero = Hash(words: (0, 0, 0, 0))

    @usableFromInline var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    @inlinable init(words: (UInt64, UInt64, UInt64, UInt64)) {
        (w0, w1, w2, w3) = words
    }

    /// `bytes` must hold exactly 32 bytes.
    @inlinable public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        if let hash = bytes.withContiguousStorageIfAvailable({ Hash(raw: UnsafeRawBufferPointer($0)) }) {
            self = hash
        } else {
            self = Array(bytes).withUnsafeBytes { Hash(raw: $0) }
        }
    }

    /// Exactly 32 bytes, as four big-endian words. Hashing and decoding make a Hash per
    /// state node and transaction, so this is the one place bytes become a digest.
    @inlinable public init(raw: UnsafeRawBufferPointer) {
        precondition(raw.count == Hash.byteCount, "a hash is 32 bytes")
        self.init(
            words: (
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            ))
    }

    public init?(hex: String) {
        guard let raw = [UInt8](hex: hex), raw.count == Hash.byteCount else { return nil }
        self.init(bytes: raw)
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        append(to: &out)
        return out
    }

    @inlinable public func append(to out: inout [UInt8]) {
        withUnsafeBytes(of: (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)) { out.append(contentsOf: $0) }
    }

    /// Writes the 32 bytes at `pointer` (no alignment needed).
    @inlinable public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
        pointer.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
        pointer.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
        pointer.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
    }

    /// Bit `index` counted from the most significant bit of the first byte; the state
    /// tree walks a key's path in this order.
    @inlinable public func bit(_ index: Int) -> Bool {
        precondition(index >= 0 && index < 256)
        return (word(index >> 6) >> UInt64(63 - (index & 63))) & 1 == 1
    }

    /// Bits `4 * index` to `4 * index + 3` as a number (the first of them most
    /// significant): the slot of a key's path in a stored node of the state tree.
    @inlinable public func nibble(_ index: Int) -> Int {
        precondition(index >= 0 && index < 64)
        return Int((word(index >> 4) >> UInt64(60 - 4 * (index & 15))) & 0xF)
    }

    /// The first 64 bits, enough to place a digest in a hash table of our own making
    /// (finding 2^32 digests that share them costs 2^96 hashing).
    @inlinable public var leadingWord: UInt64 { w0 }

    /// The `index`th 64-bit word, most significant first.
    @inlinable @inline(__always) func word(_ index: Int) -> UInt64 {
        switch index {
        case 0: w0
        case 1: w1
        case 2: w2
        default: w3
        }
    }

    @inlinable public static func < (lhs: Hash, rhs: Hash) -> Bool {
        if lhs.w0 != rhs.w0 { return lhs.w0 < rhs.w0 }
        if lhs.w1 != rhs.w1 { return lhs.w1 < rhs.w1 }
        if lhs.w2 != rhs.w2 { return lhs.w2 < rhs.w2 }
        return lhs.w3 < rhs.w3
    }

    public var hex: String { bytes.hexString }
    public var description: String { hex }
}

extension Hash: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.hash(self) }
    public init(from reader: inout CanonicalReader) throws(CodecError) { self = try reader.hash("hash") }
}

extension Array where Element == UInt8 {
    public var hexString: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses lowercase or uppercase hex, with an optional `0x`; nil for anything else.
    public init?(hex: String) {
        var text = Substring(hex)
        if text.hasPrefix("0x") { text = text.dropFirst(2) }
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        self = out
    }
}
