// Citizen points: a city's rule-setting authority defines what good conduct earns;
// authorised issuers (departments) award points; citizens spend them on services.
// A balance never goes below zero.
//
// Methods
//   init()                                   the caller becomes the authority
//   set_rule(rule: string, points: u64)      authority: what `rule` earns (0 retires it)
//   grant_issuer(issuer: address)            authority: may award points
//   revoke_issuer(issuer: address)           authority
//   earn(citizen: address, rule: string)     issuer: award the rule's points
//   spend(amount: u64, service: string)      citizen: spend own points
//   balance(citizen: address) -> u64
//   rule(rule: string) -> u64

func handle(_ call: inout Call) {
    if call.is("init") {
        call.arguments.end()
        Chain.require(Storage.get(literal("authority")) == nil, "already initialised")
        Storage.set(literal("authority"), Chain.caller.bytes)
    } else if call.is("set_rule") {
        let rule = call.arguments.string()
        let points = call.arguments.u64()
        call.arguments.end()
        requireAuthority()
        Chain.require(!rule.isEmpty && rule.count <= 64, "a rule name has 1 to 64 bytes")
        if points == 0 {
            Storage.delete(Storage.key("rule/", rule))
        } else {
            Storage.setU64(Storage.key("rule/", rule), points)
        }
        Chain.emit("rule_set", [("rule", rule), ("points", decimal(points))])
    } else if call.is("grant_issuer") || call.is("revoke_issuer") {
        let issuer = call.arguments.address()
        call.arguments.end()
        requireAuthority()
        if call.is("grant_issuer") {
            Storage.set(Storage.key("issuer/", issuer.bytes), [1])
            Chain.emit("issuer_granted", [("issuer", issuer.hex)])
        } else {
            Storage.delete(Storage.key("issuer/", issuer.bytes))
            Chain.emit("issuer_revoked", [("issuer", issuer.hex)])
        }
    } else if call.is("earn") {
        let citizen = call.arguments.address()
        let rule = call.arguments.string()
        call.arguments.end()
        Chain.require(Storage.get(Storage.key("issuer/", Chain.caller.bytes)) != nil, "only an issuer awards points")
        let points = Storage.u64(Storage.key("rule/", rule))
        Chain.require(points > 0, "no such rule")
        let key = Storage.key("balance/", citizen.bytes)
        let (balance, overflow) = Storage.u64(key).addingReportingOverflow(points)
        Chain.require(!overflow, "balance overflow")
        Storage.setU64(key, balance)
        Chain.emit("earned", [("citizen", citizen.hex), ("rule", rule), ("points", decimal(points)), ("balance", decimal(balance))])
    } else if call.is("spend") {
        let amount = call.arguments.u64()
        let service = call.arguments.string()
        call.arguments.end()
        Chain.require(amount > 0, "spend at least one point")
        let citizen = Chain.caller
        let key = Storage.key("balance/", citizen.bytes)
        let balance = Storage.u64(key)
        Chain.require(balance >= amount, "insufficient points")
        Storage.setU64(key, balance - amount)
        Chain.emit("spent", [("citizen", citizen.hex), ("service", service), ("points", decimal(amount)), ("balance", decimal(balance - amount))])
    } else if call.is("balance") {
        let citizen = call.arguments.address()
        call.arguments.end()
        var out = Values()
        out.u64(Storage.u64(Storage.key("balance/", citizen.bytes)))
        Chain.output(out)
    } else if call.is("rule") {
        let rule = call.arguments.string()
        call.arguments.end()
        var out = Values()
        out.u64(Storage.u64(Storage.key("rule/", rule)))
        Chain.output(out)
    } else {
        Chain.revert("unknown method")
    }
}

func requireAuthority() {
    Chain.require(Storage.get(literal("authority")) == Chain.caller.bytes, "only the authority sets rules and issuers")
}
