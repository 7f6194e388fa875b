/// The one-byte key prefixes that partition a node's store. Every writer names its
/// prefix here, so two layers can never collide.
public enum StorePrefix: UInt8, Sendable {
    /// `b` + height (8 bytes, big-endian) → encoded block.
    case block = 0x62
    /// `c` + height → encoded quorum certificate of that block.
    case certificate = 0x63
    /// `h` + block hash → height.
    case blockHash = 0x68
    /// `t` + transaction id → height (8) + index (4); in stores of formats 3 and 4, the
    /// encoded receipt after them.
    case transaction = 0x74
    /// `e` + height (8 bytes, big-endian) + index in the block (4, big-endian) → encoded
    /// receipt (store format 5).
    case receipt = 0x65
    /// `s` + version (8 bytes, big-endian) + node hash → state tree node (ADR 0011).
    case stateNode = 0x73
    /// `x` + height (8 bytes, big-endian) + version (8) + node hash → what pruning that
    /// height removes (a tree node, its root-index entry): the nodes the block of that
    /// height replaced (ADR 0013).
    case staleStateNode = 0x78
    /// `r` + root hash → kind (1 byte) + version (8) of that state root's node.
    case stateRoot = 0x72
    /// `n` + node hash → state tree node, as stores of format 3 and before kept it; read
    /// only to migrate such a store.
    case stateNodeByHash = 0x6e
    /// `v` + state key → latest value (a flat index beside the tree, for fast reads).
    case stateValue = 0x76
    /// `m` + name → node metadata (last committed height, genesis hash).
    case metadata = 0x6d
    /// `p` + block hash → a certified block not yet committed, with its certificate, so
    /// that a restarted node can go on from its certified tip.
    case certifiedBlock = 0x70

    public func key(_ rest: [UInt8]) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(1 + rest.count)
        key.append(rawValue)
        key.append(contentsOf: rest)
        return key
    }

    public func key(height: UInt64) -> [UInt8] {
        var out = [rawValue]
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: height >> UInt64(shift))) }
        return out
    }
}
