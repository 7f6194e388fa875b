/// Read access to the latest state by raw key, as execution sees it.
public protocol StateReader {
    func value(for key: [UInt8]) throws(ExecutionError) -> [UInt8]?
}

/// Why a call failed. Becomes the failure code and message of the receipt; the code is
/// stable (clients match on it), the message is for people.
public struct ExecutionError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: String
    public let message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func outOfGas(_ limit: UInt64) -> ExecutionError {
        ExecutionError("gas.out_of_gas", "out of gas (limit \(limit))")
    }

    public static func invalidArguments(_ detail: String) -> ExecutionError {
        ExecutionError("call.invalid_arguments", detail)
    }

    public var description: String { "\(code): \(message)" }
}
