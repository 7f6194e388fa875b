import CivitasCore

/// What a call sees and changes while it runs: the sender, the block, gas, and a
/// private overlay of state writes that reaches the block only if the call succeeds.
public final class TransactionContext {
    /// The transaction's signer (for a query, whom it runs as).
    public let senderAddress: Address
    /// Who is calling the running module or contract: the transaction's sender, or the
    /// contract that called it. Modules authorise on this, so a contract acts as itself.
    public private(set) var caller: Address
    /// Contract frames on the call stack (0 while only system modules run).
    public private(set) var contractDepth = 0
    public let height: UInt64
    public let hasher: any HashFunction
    public private(set) var gas: GasMeter
    public private(set) var events: [Event] = []
    private let base: any StateReader
    /// Writes of this call, keyed by state key; nil deletes.
    public private(set) var writes: [ByteKey: [UInt8]?] = [:]

    /// How a contract reaches system modules (set by the executor, which knows them).
    public var moduleCall: ((_ module: String, _ method: String, _ arguments: [UInt8]) throws(ExecutionError) -> [UInt8])?

    /// Receives contracts' `log` lines: queries show them, transactions drop them.
    public var log: ((Address, String) -> Void)?

    public convenience init(
        sender: PublicKey, height: UInt64, gasLimit: UInt64, hasher: any HashFunction, base: any StateReader
    ) {
        self.init(sender: Address(of: sender, using: hasher), height: height, gasLimit: gasLimit, hasher: hasher, base: base)
    }

    public init(sender: Address, height: UInt64, gasLimit: UInt64, hasher: any HashFunction, base: any StateReader) {
        self.senderAddress = sender
        self.caller = senderAddress
        self.height = height
        self.hasher = hasher
        self.gas = GasMeter(limit: gasLimit)
        self.base = base
    }

    public func charge(_ amount: UInt64) throws(ExecutionError) {
        try gas.charge(amount)
    }

    /// Runs `body` as a contract frame whose own calls come from `contract`; the
    /// caller and depth are restored however `body` ends.
    public func enterContract<T>(
        _ contract: Address, maxDepth: Int, _ body: () throws(ExecutionError) -> T
    ) throws(ExecutionError) -> T {
        guard contractDepth < maxDepth else {
            throw ExecutionError("contract.depth_exceeded", "contract calls nest at most \(maxDepth) deep")
        }
        let outer = caller
        contractDepth += 1
        defer {
            contractDepth -= 1
            caller = outer
        }
        caller = contract
        return try body()
    }

    /// Runs `body` with `address` as the caller (a contract calling a module).
    public func withCaller<T>(_ address: Address, _ body: () throws(ExecutionError) -> T) throws(ExecutionError) -> T {
        let outer = caller
        defer { caller = outer }
        caller = address
        return try body()
    }

    /// Marks the whole limit used: how an out-of-fuel trap ends.
    public func exhaustGas() {
        try? gas.charge(gas.remaining + 1)
    }

    public func get(_ key: [UInt8]) throws(ExecutionError) -> [UInt8]? {
        try charge(GasSchedule.stateReadBase + GasSchedule.stateReadPerByte * UInt64(key.count))
        if let pending = writes[ByteKey(key)] { return pending }
        let value = try base.value(for: key)
        try charge(GasSchedule.stateReadPerByte * UInt64(value?.count ?? 0))
        return value
    }

    /// Reads without charging: for the host's own bookkeeping, whose cost is charged
    /// by a fixed rule (reading contract code, for one, costs the same whether or not
    /// a node had it cached).
    public func peek(_ key: [UInt8]) throws(ExecutionError) -> [UInt8]? {
        if let pending = writes[ByteKey(key)] { return pending }
        return try base.value(for: key)
    }

    public func set(_ key: [UInt8], _ value: [UInt8]?) throws(ExecutionError) {
        guard key.count <= ProtocolLimits.stateKeyBytesMax else {
            throw ExecutionError("state.key_too_large", "state key of \(key.count) bytes exceeds \(ProtocolLimits.stateKeyBytesMax)")
        }
        if let value, value.count > ProtocolLimits.stateValueBytesMax {
            throw ExecutionError("state.value_too_large", "state value of \(value.count) bytes exceeds \(ProtocolLimits.stateValueBytesMax)")
        }
        try charge(GasSchedule.stateWriteBase + GasSchedule.stateWritePerByte * UInt64(key.count + (value?.count ?? 0)))
        writes[ByteKey(key)] = .some(value)
    }

    public func emit(_ event: Event) throws(ExecutionError) {
        guard events.count < ProtocolLimits.eventsPerReceiptMax else {
            throw ExecutionError("event.too_many", "a call may emit at most \(ProtocolLimits.eventsPerReceiptMax) events")
        }
        guard event.attributes.count <= ProtocolLimits.eventAttributesMax,
            event.name.utf8.count <= ProtocolLimits.eventNameBytesMax,
            event.attributes.allSatisfy({
                $0.key.utf8.count <= ProtocolLimits.eventAttributeKeyBytesMax
                    && $0.value.utf8.count <= ProtocolLimits.eventAttributeValueBytesMax
            })
        else { throw ExecutionError("event.too_large", "event \(event.name) exceeds the event limits") }
        let size = event.attributes.reduce(event.name.utf8.count) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        try charge(GasSchedule.eventBase + GasSchedule.eventPerByte * UInt64(size))
        events.append(event)
    }

    public func hash(_ domain: HashDomain, _ bytes: [UInt8]) throws(ExecutionError) -> Hash {
        try charge(GasSchedule.hashBase + GasSchedule.hashPerWord * UInt64((bytes.count + 31) / 32))
        return hasher.hash(domain, bytes)
    }
}
