/// Something a call announces: `module`.`name` with ordered attributes.
public struct Event: Hashable, Sendable {
    public var module: String
    public var name: String
    public var attributes: [Attribute]

    public struct Attribute: Hashable, Sendable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(module: String, name: String, attributes: [Attribute]) {
        self.module = module
        self.name = name
        self.attributes = attributes
    }
}

extension Event: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.string(module, max: ProtocolLimits.moduleNameBytesMax)
        writer.string(name, max: ProtocolLimits.eventNameBytesMax)
        writer.list(attributes, max: ProtocolLimits.eventAttributesMax) { writer, attribute in
            writer.string(attribute.key, max: ProtocolLimits.eventAttributeKeyBytesMax)
            writer.string(attribute.value, max: ProtocolLimits.eventAttributeValueBytesMax)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        module = try reader.string("event module", max: ProtocolLimits.moduleNameBytesMax)
        name = try reader.string("event name", max: ProtocolLimits.eventNameBytesMax)
        attributes = try reader.list("event attributes", max: ProtocolLimits.eventAttributesMax) {
            (reader: inout CanonicalReader) throws(CodecError) in
            Attribute(
                try reader.string("attribute key", max: ProtocolLimits.eventAttributeKeyBytesMax),
                try reader.string("attribute value", max: ProtocolLimits.eventAttributeValueBytesMax))
        }
    }
}

/// The outcome of executing one transaction. Part of the block: the header commits to
/// the Merkle root of its receipts.
public struct Receipt: Hashable, Sendable {
    public enum Status: Hashable, Sendable {
        case success
        /// `code` is stable and machine-readable (`token.insufficient_balance`); the
        /// message is for people.
        case failure(code: String, message: String)

        public var isSuccess: Bool { self == .success }
    }

    public var transactionId: Hash
    public var status: Status
    public var gasUsed: UInt64
    public var events: [Event]

    public init(transactionId: Hash, status: Status, gasUsed: UInt64, events: [Event]) {
        self.transactionId = transactionId
        self.status = status
        self.gasUsed = gasUsed
        self.events = events
    }

    public func hash(using hasher: some HashFunction) -> Hash {
        hasher.hash(.receipt, canonicalBytes)
    }
}

extension Receipt: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.hash(transactionId)
        switch status {
        case .success:
            writer.u8(0)
        case .failure(let code, let message):
            writer.u8(1)
            writer.string(code, max: ProtocolLimits.eventNameBytesMax)
            writer.string(message, max: ProtocolLimits.errorMessageBytesMax)
        }
        writer.u64(gasUsed)
        writer.list(events, max: ProtocolLimits.eventsPerReceiptMax) { $0.encode($1) }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        transactionId = try reader.hash("receipt transaction id")
        switch try reader.u8("receipt status") {
        case 0: status = .success
        case 1:
            status = .failure(
                code: try reader.string("failure code", max: ProtocolLimits.eventNameBytesMax),
                message: try reader.string("failure message", max: ProtocolLimits.errorMessageBytesMax))
        case let tag: throw .unknownTag(field: "receipt status", tag: tag)
        }
        gasUsed = try reader.u64("gas used")
        events = try reader.list("receipt events", max: ProtocolLimits.eventsPerReceiptMax) {
            (reader: inout CanonicalReader) throws(CodecError) in try reader.decode(Event.self)
        }
    }
}
