// A house-rental registry: landlords list properties, register leases and their end;
// every step stays in the property's history, which anyone can read.
//
// Methods
//   list(property: string, rent: u64)           caller becomes the landlord
//   lease(property: string, tenant: address)    landlord; the property must be free
//   end_lease(property: string)                 landlord or tenant
//   show(property) -> (landlord: address, rent: u64, leased: bool[, tenant: address])
//   history(property) -> (count: u64, then per entry: kind: string, party: address, height: u64)

func propertyKey(_ property: [UInt8]) -> [UInt8] { Storage.key("property/", property) }

func record(_ property: [UInt8], _ kind: StaticString, _ party: Address) {
    let countKey = Storage.key("history-count/", property)
    let count = Storage.u64(countKey)
    var entry = Values()
    entry.string(kind)
    entry.address(party)
    entry.u64(Chain.blockHeight)
    Storage.set(Storage.key("history/", property, decimal(count)), entry.data)
    Storage.setU64(countKey, count + 1)
}

struct Property {
    var landlord: Address
    var rent: UInt64
    var tenant: Address?

    static func load(_ property: [UInt8]) -> Property {
        guard let stored = Storage.get(propertyKey(property)) else { Chain.revert("no such property") }
        var reader = Arguments(stored)
        let landlord = reader.address()
        let rent = reader.u64()
        return Property(landlord: landlord, rent: rent, tenant: reader.bool() ? reader.address() : nil)
    }

    var values: Values {
        var values = Values()
        values.address(landlord)
        values.u64(rent)
        values.bool(tenant != nil)
        if let tenant { values.address(tenant) }
        return values
    }

    func save(_ property: [UInt8]) { Storage.set(propertyKey(property), values.data) }
}

func handle(_ call: inout Call) {
    if call.is("list") {
        let property = call.arguments.string()
        let rent = call.arguments.u64()
        call.arguments.end()
        Chain.require(!property.isEmpty && property.count <= 128, "a property id has 1 to 128 bytes")
        Chain.require(Storage.get(propertyKey(property)) == nil, "property already listed")
        Property(landlord: Chain.caller, rent: rent, tenant: nil).save(property)
        record(property, "listed", Chain.caller)
        Chain.emit("listed", [("property", property), ("rent", decimal(rent))])
    } else if call.is("lease") {
        let property = call.arguments.string()
        let tenant = call.arguments.address()
        call.arguments.end()
        var entry = Property.load(property)
        Chain.require(entry.landlord == Chain.caller, "only the landlord registers a lease")
        Chain.require(entry.tenant == nil, "property is already leased")
        Chain.require(tenant != entry.landlord, "a landlord cannot lease to themselves")
        entry.tenant = tenant
        entry.save(property)
        record(property, "leased", tenant)
        Chain.emit("leased", [("property", property), ("tenant", tenant.hex)])
    } else if call.is("end_lease") {
        let property = call.arguments.string()
        call.arguments.end()
        var entry = Property.load(property)
        guard let tenant = entry.tenant else { Chain.revert("property is not leased") }
        let caller = Chain.caller
        Chain.require(caller == entry.landlord || caller == tenant, "only the landlord or the tenant ends a lease")
        entry.tenant = nil
        entry.save(property)
        record(property, "ended", tenant)
        Chain.emit("lease_ended", [("property", property), ("tenant", tenant.hex)])
    } else if call.is("show") {
        let property = call.arguments.string()
        call.arguments.end()
        Chain.output(Property.load(property).values)
    } else if call.is("history") {
        let property = call.arguments.string()
        call.arguments.end()
        let count = Storage.u64(Storage.key("history-count/", property))
        var out = Values()
        out.u64(count)
        var index: UInt64 = 0
        while index < count {
            if let entry = Storage.get(Storage.key("history/", property, decimal(index))) { out.append(encoded: entry) }
            index += 1
        }
        Chain.output(out)
    } else {
        Chain.revert("unknown method")
    }
}
