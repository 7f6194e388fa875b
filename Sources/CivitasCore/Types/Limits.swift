/// Protocol-wide bounds on encoded fields. They are part of the consensus rules: a node
/// with other values would reject blocks its peers accept.
public enum ProtocolLimits {
    public static let chainIdBytesMax = 64
    public static let moduleNameBytesMax = 32
    public static let methodNameBytesMax = 64
    public static let callArgumentsBytesMax = 112 * 1024
    public static let transactionBytesMax = 128 * 1024
    public static let blockTransactionsMax = 10_000
    public static let gossipTransactionsMax = 2_048
    public static let eventsPerReceiptMax = 64
    public static let eventNameBytesMax = 64
    public static let eventAttributesMax = 16
    public static let eventAttributeKeyBytesMax = 64
    public static let eventAttributeValueBytesMax = 1024
    public static let errorMessageBytesMax = 1024
    public static let validatorsMax = 256
    public static let organisationIdBytesMax = 64
    public static let stateKeyBytesMax = 1024
    public static let stateValueBytesMax = 64 * 1024
}
