import CivitasCore
import CivitasVM

/// `token`: one fungible balance per identity address, minted at genesis.
///
/// Method: `transfer(to: address (32 bytes), amount: u64 > 0)`.
public struct TokenModule: SystemModule {
    public init() {}
    public var name: String { "token" }

    public static func transferArguments(to recipient: Address, amount: UInt64) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.hash(recipient.hash)
        writer.u64(amount)
        return writer.bytes
    }

    public func execute(method: String, arguments: [UInt8], context: TransactionContext) throws(ExecutionError) {
        guard method == "transfer" else { throw unknownMethod(method) }
        let (recipient, amount) = try decodeArguments(arguments) { (reader: inout CanonicalReader) throws(CodecError) in
            (Address(try reader.hash("recipient")), try reader.u64("amount"))
        }
        guard amount > 0 else { throw ExecutionError("token.invalid_amount", "transfer amount must be positive") }
        let senderKey = StateKeys.balance(context.caller)
        let senderBalance = try StateKeys.decodeU64(try context.get(senderKey))
        guard senderBalance >= amount else {
            throw ExecutionError("token.insufficient_balance", "balance \(senderBalance) is less than \(amount)")
        }
        if recipient != context.caller {
            let recipientKey = StateKeys.balance(recipient)
            let recipientBalance = try StateKeys.decodeU64(try context.get(recipientKey))
            // Supply is a UInt64 fixed at genesis, so no balance can overflow.
            try context.set(senderKey, StateKeys.encode(senderBalance - amount))
            try context.set(recipientKey, StateKeys.encode(recipientBalance + amount))
        }
        try context.emit(
            Event(module: name, name: "transfer", attributes: [
                .init("from", context.caller.description), .init("to", recipient.description),
                .init("amount", String(amount)),
            ]))
    }
}
