/// One argument or result of a contract method. The contract ABI carries a sequence of
/// these: each value is a tag byte and its payload, so a sequence decodes without a
/// schema and the CLI and API can show it as JSON.
///
/// | tag | type    | payload                         | JSON                         |
/// |-----|---------|---------------------------------|------------------------------|
/// | 1   | u64     | 8 bytes, big-endian             | `42`                         |
/// | 2   | i64     | 8 bytes, big-endian, two's comp | `-5` or `{"i64": 5}`         |
/// | 3   | bool    | 1 byte, 0 or 1                  | `true`                       |
/// | 4   | string  | u32 length, UTF-8               | `"text"`                     |
/// | 5   | bytes   | u32 length, bytes               | `{"bytes": "0x0102"}`        |
/// | 6   | address | 32 bytes                        | `{"address": "<64 hex>"}`    |
public enum ContractValue: Hashable, Sendable {
    case u64(UInt64)
    case i64(Int64)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])
    case address(Address)

    /// A value sequence may not be longer than a call's arguments.
    public static let sequenceBytesMax = ProtocolLimits.callArgumentsBytesMax

    public static func encode(_ values: [ContractValue]) -> [UInt8] {
        var writer = CanonicalWriter()
        for value in values { value.encode(to: &writer) }
        return writer.bytes
    }

    /// Decodes a whole sequence; any trailing or malformed byte is an error.
    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> [ContractValue] {
        guard bytes.count <= sequenceBytesMax else {
            throw .oversize(field: "contract values", length: bytes.count, max: sequenceBytesMax)
        }
        var reader = CanonicalReader(bytes)
        var values: [ContractValue] = []
        while reader.remaining > 0 {
            values.append(try ContractValue(from: &reader))
        }
        return values
    }

    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .u64(let value):
            writer.u8(1)
            writer.u64(value)
        case .i64(let value):
            writer.u8(2)
            writer.u64(UInt64(bitPattern: value))
        case .bool(let value):
            writer.u8(3)
            writer.bool(value)
        case .string(let value):
            writer.u8(4)
            writer.string(value, max: Self.sequenceBytesMax)
        case .bytes(let value):
            writer.u8(5)
            writer.byteString(value, max: Self.sequenceBytesMax)
        case .address(let value):
            writer.u8(6)
            writer.hash(value.hash)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        let tag = try reader.u8("contract value tag")
        switch tag {
        case 1: self = .u64(try reader.u64("u64"))
        case 2: self = .i64(Int64(bitPattern: try reader.u64("i64")))
        case 3: self = .bool(try reader.bool("bool"))
        case 4: self = .string(try reader.string("string", max: Self.sequenceBytesMax))
        case 5: self = .bytes(try reader.byteString("bytes", max: Self.sequenceBytesMax))
        case 6: self = .address(Address(try reader.hash("address")))
        default: throw .unknownTag(field: "contract value", tag: tag)
        }
    }
}

extension ContractValue: Codable {
    private enum Keys: String, CodingKey {
        case i64, u64, bytes, address
    }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer() {
            if let value = try? single.decode(Bool.self) {
                self = .bool(value)
                return
            }
            if let value = try? single.decode(UInt64.self) {
                self = .u64(value)
                return
            }
            if let value = try? single.decode(Int64.self) {
                self = .i64(value)
                return
            }
            if let value = try? single.decode(String.self) {
                self = .string(value)
                return
            }
        }
        let container = try decoder.container(keyedBy: Keys.self)
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "a contract value is a number, true/false, a string, or one of {\"i64\"}, {\"u64\"}, {\"bytes\"}, {\"address\"}"))
        }
        switch key {
        case .i64: self = .i64(try container.decode(Int64.self, forKey: .i64))
        case .u64: self = .u64(try container.decode(UInt64.self, forKey: .u64))
        case .bytes:
            let text = try container.decode(String.self, forKey: .bytes)
            guard let bytes = [UInt8](hex: text.hasPrefix("0x") ? String(text.dropFirst(2)) : text) else {
                throw DecodingError.dataCorruptedError(forKey: .bytes, in: container, debugDescription: "bytes must be hex")
            }
            self = .bytes(bytes)
        case .address:
            let text = try container.decode(String.self, forKey: .address)
            guard let hash = Hash(hex: text) else {
                throw DecodingError.dataCorruptedError(forKey: .address, in: container, debugDescription: "an address is 64 hex digits")
            }
            self = .address(Address(hash))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .u64(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .i64(let value):
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(value, forKey: .i64)
        case .bool(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .string(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .bytes(let value):
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode("0x" + value.hexString, forKey: .bytes)
        case .address(let value):
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(value.description, forKey: .address)
        }
    }
}
