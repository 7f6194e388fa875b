import CivitasCore
import CivitasVM

/// `chain`: calls about the transaction itself.
///
/// Methods: `noop()`: takes the sender's nonce and a receipt and changes nothing else.
/// It orders a transaction without executing work, which measures ordering alone, and
/// it lets a sender skip a nonce whose transaction it no longer wants.
public struct ChainModule: SystemModule {
    public init() {}
    public var name: String { "chain" }

    public func execute(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) {
        switch method {
        case "noop":
            guard arguments.isEmpty else { throw .invalidArguments("chain.noop takes no arguments") }
        default:
            throw unknownMethod(method)
        }
    }
}
