import CivitasCore

/// What a call sees and changes while it runs: the sender, the block, gas, and a
/// private overlay of state writes that reaches the block only if the call succeeds.
public final class TransactionContext {
    public let sender: PublicKey
    public let senderAddress: Address
    public let height: UInt64
    public let hasher: any HashFunction
    public private(set) var gas: GasMeter
    public private(set) var events: [Event] = []
    private let base: any StateReader
    /// Writes of this call, keyed by state key; nil deletes.
    public private(set) var writes: [[UInt8]: [UInt8]?] = [:]

    public init(
        sender: PublicKey, height: UInt64, gasLimit: UInt64, hasher: any HashFunction, base: any StateReader
    ) {
        self.sender = sender
        self.senderAddress = Address(of: sender, using: hasher)
        self.height = height
        self.hasher = hasher
        self.gas = GasMeter(limit: gasLimit)
        self.base = base
    }

    public func charge(_ amount: UInt64) throws(ExecutionError) {
        try gas.charge(amount)
    }

    public func get(_ key: [UInt8]) throws(ExecutionError) -> [UInt8]? {
        try charge(GasSchedule.stateReadBase + GasSchedule.stateReadPerByte * UInt64(key.count))
        if let pending = writes[key] { return pending }
        let value = try base.value(for: key)
        try charge(GasSchedule.stateReadPerByte * UInt64(value?.count ?? 0))
        return value
    }

    public func set(_ key: [UInt8], _ value: [UInt8]?) throws(ExecutionError) {
        guard key.count <= ProtocolLimits.stateKeyBytesMax else {
            throw ExecutionError("state.key_too_large", "state key of \(key.count) bytes exceeds \(ProtocolLimits.stateKeyBytesMax)")
        }
        if let value, value.count > ProtocolLimits.stateValueBytesMax {
            throw ExecutionError("state.value_too_large", "state value of \(value.count) bytes exceeds \(ProtocolLimits.stateValueBytesMax)")
        }
        try charge(GasSchedule.stateWriteBase + GasSchedule.stateWritePerByte * UInt64(key.count + (value?.count ?? 0)))
        writes[key] = .some(value)
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
