import CivitasCore

public struct NodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case genesisMismatch = "node.genesis_mismatch"
        case notAValidator = "node.not_a_validator"
        case notFound = "node.not_found"
        case heightNotCommitted = "node.height_not_committed"
        case noCertifiedBlock = "node.no_certified_block"
        /// The state at that height is older than the node keeps (`limits.stateHeightsKept`).
        case statePruned = "node.state_pruned"
        case tooManyWaiters = "node.too_many_waiters"
        case tooManySubscribers = "node.too_many_subscribers"
        case stopping = "node.stopping"
        case storage = "node.storage"
        case config = "node.config"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public var description: String { "\(code.rawValue): \(message)" }
}
