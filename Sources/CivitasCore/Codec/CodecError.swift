/// Why a byte string is not the canonical encoding of a value.
///
/// Decoding is strict: every encoded value has exactly one byte representation, so a
/// reader that accepts anything else would let two nodes hash "the same" value
/// differently.
public enum CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended inside `field`.
    case truncated(field: String)
    /// Bytes remained after a complete value.
    case trailingBytes(count: Int)
    /// A length prefix exceeds the field's limit.
    case oversize(field: String, length: Int, max: Int)
    /// A tag byte that names no known variant.
    case unknownTag(field: String, tag: UInt8)
    /// A value that is well-formed bytes but not an allowed value (bad UTF-8, a
    /// boolean other than 0 or 1, a wrong fixed length, unsorted entries).
    case invalid(field: String, reason: String)

    public var code: String {
        switch self {
        case .truncated: "codec.truncated"
        case .trailingBytes: "codec.trailing_bytes"
        case .oversize: "codec.oversize"
        case .unknownTag: "codec.unknown_tag"
        case .invalid: "codec.invalid"
        }
    }

    public var description: String {
        switch self {
        case .truncated(let field): "input ends inside \(field)"
        case .trailingBytes(let count): "\(count) trailing byte(s) after the value"
        case .oversize(let field, let length, let max): "\(field) is \(length) long, limit \(max)"
        case .unknownTag(let field, let tag): "unknown tag \(tag) for \(field)"
        case .invalid(let field, let reason): "invalid \(field): \(reason)"
        }
    }
}
