import CivitasCore

/// What each operation costs. Part of the consensus rules: every node must charge the
/// same, or receipts (which record gas used) would differ.
public enum GasSchedule {
    public static let transactionBase: UInt64 = 1_000
    public static let transactionPerByte: UInt64 = 10
    public static let stateReadBase: UInt64 = 200
    public static let stateReadPerByte: UInt64 = 1
    public static let stateWriteBase: UInt64 = 1_000
    public static let stateWritePerByte: UInt64 = 20
    public static let eventBase: UInt64 = 200
    public static let eventPerByte: UInt64 = 5
    public static let hashBase: UInt64 = 50
    public static let hashPerWord: UInt64 = 5

    /// Gas charged before a call runs: what carrying and verifying the transaction costs.
    public static func intrinsic(transactionBytes: Int) -> UInt64 {
        transactionBase + transactionPerByte * UInt64(transactionBytes)
    }
}

/// Counts gas against a limit. Charging past the limit throws and leaves `used` at the
/// limit, which is what the failed receipt reports.
public struct GasMeter: Sendable {
    public let limit: UInt64
    public private(set) var used: UInt64 = 0

    public init(limit: UInt64) { self.limit = limit }

    public var remaining: UInt64 { limit - used }

    public mutating func charge(_ amount: UInt64) throws(ExecutionError) {
        let (total, overflow) = used.addingReportingOverflow(amount)
        guard !overflow, total <= limit else {
            used = limit
            throw .outOfGas(limit)
        }
        used = total
    }
}
