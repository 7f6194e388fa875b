import CivitasCore
import CivitasVM

/// `kv`: each identity writes under its own namespace; anyone reads.
///
/// Methods: `put(key: bytes≤256, value: bytes≤16384)`, `putMany(entries: list≤1024 of
/// (key, value))` (a register imported in bulk: one signature and one receipt for many
/// records), `delete(key: bytes≤256)`.
public struct KVModule: SystemModule {
    public static let keyBytesMax = 256
    public static let valueBytesMax = 16 * 1024
    public static let putManyEntriesMax = 1_024

    public init() {}
    public var name: String { "kv" }

    public static func putArguments(key: [UInt8], value: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.byteString(key, max: keyBytesMax)
        writer.byteString(value, max: valueBytesMax)
        return writer.bytes
    }

    public static func putManyArguments(_ entries: [(key: [UInt8], value: [UInt8])]) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 4 + entries.reduce(0) { $0 + 8 + $1.key.count + $1.value.count })
        writer.u32(UInt32(entries.count))
        for entry in entries {
            writer.byteString(entry.key, max: keyBytesMax)
            writer.byteString(entry.value, max: valueBytesMax)
        }
        return writer.bytes
    }

    public static func deleteArguments(key: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.byteString(key, max: keyBytesMax)
        return writer.bytes
    }

    public func execute(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) {
        switch method {
        case "put":
            let (key, value) = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                (try reader.byteString("key", max: Self.keyBytesMax), try reader.byteString("value", max: Self.valueBytesMax))
            }
            try context.set(StateKeys.kv(owner: context.caller, key: key), value)
            try context.emit(
                Event(module: name, name: "put", attributes: [
                    .init("owner", context.caller.description), .init("key", displayBytes(key)),
                ]))
        case "putMany":
            let entries = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                try reader.list("entries", max: Self.putManyEntriesMax) { (entry: inout CanonicalReader) throws(CodecError) in
                    (try entry.byteString("key", max: Self.keyBytesMax), try entry.byteString("value", max: Self.valueBytesMax))
                }
            }
            guard !entries.isEmpty else { throw ExecutionError("kv.no_entries", "putMany needs at least one entry") }
            // Each write is charged as a `put` would be; a key given twice keeps its last value.
            for (key, value) in entries { try context.set(StateKeys.kv(owner: context.caller, key: key), value) }
            try context.emit(
                Event(module: name, name: "putMany", attributes: [
                    .init("owner", context.caller.description), .init("count", String(entries.count)),
                ]))
        case "delete":
            let key = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
                try reader.byteString("key", max: Self.keyBytesMax)
            }
            let stateKey = StateKeys.kv(owner: context.caller, key: key)
            guard try context.get(stateKey) != nil else {
                throw ExecutionError("kv.not_found", "no value under \(displayBytes(key)) for this sender")
            }
            try context.set(stateKey, nil)
            try context.emit(
                Event(module: name, name: "delete", attributes: [
                    .init("owner", context.caller.description), .init("key", displayBytes(key)),
                ]))
        default:
            throw unknownMethod(method)
        }
    }
}
