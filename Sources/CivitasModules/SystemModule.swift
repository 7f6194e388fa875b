import CivitasCore
import CivitasVM

/// A module built into the node. Same rules as contracts: deterministic, metered
/// through the context, and its only effect is through the context.
public protocol SystemModule: Sendable {
    var name: String { get }
    func execute(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError)
    /// Runs a method and gives its output (a contract method's return data; nothing for
    /// modules whose effects are only state and events).
    func call(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) -> [UInt8]
}

extension SystemModule {
    public func call(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) -> [UInt8] {
        try execute(method: method, arguments: arguments, context: context)
        return []
    }
}

extension SystemModule {
    func unknownMethod(_ method: String) -> ExecutionError {
        ExecutionError("call.unknown_method", "module \(name) has no method \(method)")
    }

    /// Decodes a call's arguments strictly: a bad encoding is the caller's error.
    func decodeArguments<T>(
        _ arguments: [UInt8], _ body: (inout CanonicalReader) throws(CodecError) -> T
    ) throws(ExecutionError) -> T {
        var reader = CanonicalReader(arguments)
        do {
            let value = try body(&reader)
            try reader.finish()
            return value
        } catch {
            throw .invalidArguments("\(name): \(error.description)")
        }
    }
}
