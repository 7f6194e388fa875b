// Electronic invoices: an issuer (a supplier) issues an invoice to a payer; the
// holder may transfer it (to an insurer, an employer); the holder reimburses it, and
// an invoice is reimbursed exactly once.
//
// Methods
//   issue(id: string, payer: address, amount: u64)   caller is the issuer
//   transfer(id: string, to: address)                holder only, not once reimbursed
//   reimburse(id: string)                            holder only, exactly once
//   get(id: string) -> (issuer: address, holder: address, amount: u64, reimbursed: bool)

struct Invoice {
    var issuer: Address
    var holder: Address
    var amount: UInt64
    var reimbursed: Bool

    static func key(_ id: [UInt8]) -> [UInt8] { Storage.key("invoice/", id) }

    static func load(_ id: [UInt8]) -> Invoice {
        guard let stored = Storage.get(key(id)) else { Chain.revert("no such invoice") }
        var reader = Arguments(stored)
        return Invoice(issuer: reader.address(), holder: reader.address(), amount: reader.u64(), reimbursed: reader.bool())
    }

    var values: Values {
        var values = Values()
        values.address(issuer)
        values.address(holder)
        values.u64(amount)
        values.bool(reimbursed)
        return values
    }

    func save(_ id: [UInt8]) { Storage.set(Invoice.key(id), values.data) }
}

func handle(_ call: inout Call) {
    if call.is("issue") {
        let id = call.arguments.string()
        let payer = call.arguments.address()
        let amount = call.arguments.u64()
        call.arguments.end()
        Chain.require(!id.isEmpty && id.count <= 64, "an invoice id has 1 to 64 bytes")
        Chain.require(amount > 0, "an invoice is for a positive amount")
        Chain.require(Storage.get(Invoice.key(id)) == nil, "invoice id already used")
        let invoice = Invoice(issuer: Chain.caller, holder: payer, amount: amount, reimbursed: false)
        invoice.save(id)
        Chain.emit("issued", [("id", id), ("issuer", invoice.issuer.hex), ("payer", payer.hex), ("amount", decimal(amount))])
    } else if call.is("transfer") {
        let id = call.arguments.string()
        let to = call.arguments.address()
        call.arguments.end()
        var invoice = Invoice.load(id)
        Chain.require(invoice.holder == Chain.caller, "only the holder transfers an invoice")
        Chain.require(!invoice.reimbursed, "a reimbursed invoice cannot be transferred")
        invoice.holder = to
        invoice.save(id)
        Chain.emit("transferred", [("id", id), ("to", to.hex)])
    } else if call.is("reimburse") {
        let id = call.arguments.string()
        call.arguments.end()
        var invoice = Invoice.load(id)
        Chain.require(invoice.holder == Chain.caller, "only the holder is reimbursed")
        Chain.require(!invoice.reimbursed, "invoice already reimbursed")
        invoice.reimbursed = true
        invoice.save(id)
        Chain.emit("reimbursed", [("id", id), ("holder", invoice.holder.hex), ("amount", decimal(invoice.amount))])
    } else if call.is("get") {
        let id = call.arguments.string()
        call.arguments.end()
        Chain.output(Invoice.load(id).values)
    } else {
        Chain.revert("unknown method")
    }
}
