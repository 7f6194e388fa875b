import CivitasCore
import Crypto
import Synchronization

/// Ed25519 signature verification as Civitas defines it (ADR 0008), one at a time or
/// many at once.
///
/// A signature (R, S) by key A on message M is valid when A and R are canonical
/// encodings of curve points, S < L, and [8][S]B = [8]R + [8][k]A with
/// k = SHA-512(R ‖ A ‖ M) mod L. This is RFC 8032's cofactored equation: a batch check
/// decides exactly what one-by-one checks decide (up to a 2^-127 chance), so a
/// transaction's validity never depends on which transactions it was checked with.
/// Every signature an RFC 8032 signer makes is valid under it.
///
/// A batch of n signatures is checked with one multi-scalar multiplication:
/// [8]( Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ − (Σ zᵢSᵢ)B ) = 0 for coefficients zᵢ of 128 bits derived
/// from the whole batch. The 253 doublings are shared by every term and a key that
/// signs several items of the batch is one term, so a signature costs a fraction of a
/// separate check. When a batch fails, its items are checked one by one.
public enum Ed25519Verification {
    public struct Item: Sendable {
        public var publicKey: [UInt8]
        public var message: [UInt8]
        public var signature: [UInt8]

        public init(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) {
            self.publicKey = publicKey
            self.message = message
            self.signature = signature
        }
    }

    public static func isValid(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard let parsed = parse(Item(publicKey: publicKey, message: message, signature: signature), index: 0) else { return false }
        return holds(parsed)
    }

    /// Whether each item's signature is valid, in the items' order.
    public static func verify(_ items: [Item]) -> [Bool] {
        var results = [Bool](repeating: false, count: items.count)
        var parsed: [Parsed] = []
        parsed.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            if let entry = parse(item, index: index) { parsed.append(entry) }
        }
        if parsed.count == 1 {
            results[parsed[0].index] = holds(parsed[0])
        } else if parsed.count > 1 {
            if batchHolds(parsed) {
                for entry in parsed { results[entry.index] = true }
            } else {
                for entry in parsed { results[entry.index] = holds(entry) }
            }
        }
        return results
    }

    // MARK: Parsing

    struct Parsed {
        var index: Int
        var keyBytes: [UInt8]
        var key: DecodedKey
        var r: EdwardsPoint
        var rBytes: [UInt8]
        var s: Scalar25519
        var k: Scalar25519
    }

    static func parse(_ item: Item, index: Int) -> Parsed? {
        guard item.signature.count == 64, item.publicKey.count == 32 else { return nil }
        let rBytes = Array(item.signature[0..<32])
        guard let s = Scalar25519(canonical: item.signature[32..<64]), let key = decodedKey(item.publicKey),
            let r = EdwardsPoint(decoding: rBytes)
        else { return nil }
        var hash = SHA512()
        hash.update(data: rBytes)
        hash.update(data: item.publicKey)
        hash.update(data: item.message)
        let k = Scalar25519(reducing: Array(hash.finalize()))
        return Parsed(index: index, keyBytes: item.publicKey, key: key, r: r, rBytes: rBytes, s: s, k: k)
    }

    // MARK: Checking

    /// [8]([k]A − [S]B + R) = 0.
    static func holds(_ entry: Parsed) -> Bool {
        let sum = multiScalar([
            (entry.k.nonAdjacentForm, entry.key.multiples),
            (entry.s.negated.nonAdjacentForm, baseMultiples),
        ])
        return (sum + entry.r.cached).timesCofactor.isIdentity
    }

    static func batchHolds(_ entries: [Parsed]) -> Bool {
        let coefficients = self.coefficients(entries)
        var terms: [(digits: [Int8], table: OddMultiples)] = []
        terms.reserveCapacity(entries.count + 8)
        var keyTerms: [ByteKey: Int] = [:]
        var keyScalars: [Scalar25519] = []
        var keyTables: [OddMultiples] = []
        var baseScalar = Scalar25519.zero
        for (entry, z) in zip(entries, coefficients) {
            terms.append((z.nonAdjacentForm, OddMultiples(entry.r)))
            baseScalar = baseScalar + z * entry.s
            let weight = z * entry.k
            let key = ByteKey(entry.keyBytes)
            if let slot = keyTerms[key] {
                keyScalars[slot] = keyScalars[slot] + weight
            } else {
                keyTerms[key] = keyScalars.count
                keyScalars.append(weight)
                keyTables.append(entry.key.multiples)
            }
        }
        for (scalar, table) in zip(keyScalars, keyTables) { terms.append((scalar.nonAdjacentForm, table)) }
        terms.append((baseScalar.negated.nonAdjacentForm, baseMultiples))
        return multiScalar(terms).timesCofactor.isIdentity
    }

    /// 128-bit coefficients from a hash of every item of the batch: the same batch gets
    /// the same coefficients on every node, and no signer can choose them without
    /// breaking SHA-512. Each coefficient is odd, so never zero.
    static func coefficients(_ entries: [Parsed]) -> [Scalar25519] {
        var seedHash = SHA512()
        seedHash.update(data: Array("civitas.ed25519.batch".utf8))
        for entry in entries {
            seedHash.update(data: entry.keyBytes)
            seedHash.update(data: entry.rBytes)
            seedHash.update(data: entry.s.bytes)
            seedHash.update(data: entry.k.bytes)
        }
        let seed = Array(seedHash.finalize())
        var coefficients: [Scalar25519] = []
        coefficients.reserveCapacity(entries.count)
        var block: UInt64 = 0
        while coefficients.count < entries.count {
            var hash = SHA512()
            hash.update(data: seed)
            withUnsafeBytes(of: block.littleEndian) { hash.update(bufferPointer: $0) }
            let digest = Array(hash.finalize())
            for offset in stride(from: 0, to: 64, by: 16) where coefficients.count < entries.count {
                let low = digest[offset..<offset + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let high = digest[offset + 8..<offset + 16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                coefficients.append(Scalar25519(low: low | 1, high: high))
            }
            block += 1
        }
        return coefficients
    }

    /// Σ scalarᵢ·Pᵢ by Straus' method: one chain of doublings, each term adding its
    /// odd multiple wherever its signed digit is nonzero.
    static func multiScalar(_ terms: [(digits: [Int8], table: OddMultiples)]) -> EdwardsPoint {
        var top = -1
        for term in terms {
            if let last = term.digits.lastIndex(where: { $0 != 0 }) { top = max(top, last) }
        }
        var sum = EdwardsPoint.identity
        guard top >= 0 else { return sum }
        for position in stride(from: top, through: 0, by: -1) {
            sum = sum.doubled()
            for term in terms {
                let digit = term.digits[position]
                if digit != 0 { sum = term.table.add(digit, to: sum) }
            }
        }
        return sum
    }

    // MARK: Keys

    struct DecodedKey {
        var point: EdwardsPoint
        var multiples: OddMultiples
    }

    static let baseMultiples = OddMultiples(EdwardsPoint.base)

    /// Decoded keys with their tables, since a sender signs many transactions. Bounded:
    /// emptied when full.
    private static let keyCache = Mutex<[ByteKey: DecodedKey]>([:])
    private static let keyCacheMax = 4_096

    static func decodedKey(_ bytes: [UInt8]) -> DecodedKey? {
        let held = ByteKey(bytes)
        if let known = keyCache.withLock({ $0[held] }) { return known }
        guard let point = EdwardsPoint(decoding: bytes) else { return nil }
        let key = DecodedKey(point: point, multiples: OddMultiples(point))
        keyCache.withLock { cache in
            if cache.count >= keyCacheMax { cache.removeAll(keepingCapacity: true) }
            cache[held] = key
        }
        return key
    }
}
