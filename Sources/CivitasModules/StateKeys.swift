import CivitasCore

/// Where each module keeps its data in the state tree. Keys start with the module's
/// name and a slash, so modules (and later contracts) have disjoint namespaces.
public enum StateKeys {
    public static func nonce(_ address: Address) -> [UInt8] { Array("acct/nonce/".utf8) + address.hash.bytes }
    public static func organisation(_ address: Address) -> [UInt8] { Array("acct/org/".utf8) + address.hash.bytes }
    public static func kv(owner: Address, key: [UInt8]) -> [UInt8] { Array("kv/".utf8) + owner.hash.bytes + key }
    public static func balance(_ address: Address) -> [UInt8] { Array("token/bal/".utf8) + address.hash.bytes }
    public static let supply: [UInt8] = Array("token/supply".utf8)
    public static func admin(_ address: Address) -> [UInt8] { Array("gov/admin/".utf8) + address.hash.bytes }
    public static let organisations: [UInt8] = Array("gov/orgs".utf8)
    public static func tlsAuthority(_ organisation: String) -> [UInt8] { Array("gov/tls/".utf8) + Array(organisation.utf8) }
    public static func peerAddress(_ validator: Address) -> [UInt8] { Array("gov/peer/".utf8) + validator.hash.bytes }
    public static func proposal(_ id: Hash) -> [UInt8] { Array("gov/proposal/".utf8) + id.bytes }
    public static let validatorsChangedAt: [UInt8] = Array("gov/changed-at".utf8)

    public static func encode(_ value: UInt64) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 8)
        writer.u64(value)
        return writer.bytes
    }

    public static func decodeU64(_ bytes: [UInt8]?) throws(ExecutionError) -> UInt64 {
        guard let bytes else { return 0 }
        guard bytes.count == 8 else { throw ExecutionError("state.corrupt", "expected an 8-byte integer in state") }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Renders bytes for event attributes and the CLI: as text when they are printable
/// UTF-8, else as 0x-prefixed hex.
public func displayBytes(_ bytes: [UInt8]) -> String {
    // Printable ASCII, what most keys are, needs neither validation nor a lookup of
    // Unicode properties: every `kv.put` names its key in an event, and that lookup was
    // 1.5% of a validator's CPU under load (docs/benchmarks.md, session 22).
    let readsAsHex = bytes.starts(with: [0x30, 0x78])  // "0x"
    if !readsAsHex {
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return String(decoding: bytes, as: UTF8.self) }
        if let text = String(validating: bytes, as: UTF8.self),
            text.unicodeScalars.allSatisfy({ !$0.properties.isNoncharacterCodePoint && ($0.value >= 0x20 && $0.value != 0x7f) })
        {
            return text
        }
    }
    return "0x" + bytes.hexString
}
