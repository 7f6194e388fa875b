/// An integer modulo the group order L = 2^252 + c, c = 27742317777372353535851937790883648493,
/// in four 64-bit limbs, least significant first, always below L.
struct Scalar25519: Equatable {
    var limbs: [UInt64]

    static let order: [UInt64] = [0x5812_631A_5CF5_D3ED, 0x14DE_F9DE_A2F7_9CD6, 0, 0x1000_0000_0000_0000]
    /// c = L − 2^252, so 2^252 ≡ −c (mod L).
    private static let c: [UInt64] = [0x5812_631A_5CF5_D3ED, 0x14DE_F9DE_A2F7_9CD6]
    static let zero = Scalar25519(reduced: [0, 0, 0, 0])
    static let one = Scalar25519(reduced: [1, 0, 0, 0])

    private init(reduced limbs: [UInt64]) { self.limbs = limbs }

    /// 32 little-endian bytes, refused unless below L (RFC 8032 requires S < L).
    init?(canonical bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        let limbs = Self.words(Array(bytes))
        guard Self.compare(limbs, Self.order) < 0 else { return nil }
        self.limbs = limbs
    }

    /// Any little-endian byte string up to 64 bytes (a SHA-512 digest), reduced mod L.
    init(reducing bytes: some Collection<UInt8>) {
        precondition(bytes.count <= 64)
        limbs = Self.reduce(Self.words(Array(bytes)))
    }

    /// A value below 2^128 (a batch coefficient).
    init(low: UInt64, high: UInt64) { limbs = [low, high, 0, 0] }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for limb in limbs { withUnsafeBytes(of: limb.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    static func + (a: Scalar25519, b: Scalar25519) -> Scalar25519 {
        var sum = add(a.limbs + [0], b.limbs + [0])
        if compare(sum, order + [0]) >= 0 { sum = subtract(sum, order + [0]) }
        return Scalar25519(reduced: Array(sum.prefix(4)))
    }

    static func * (a: Scalar25519, b: Scalar25519) -> Scalar25519 {
        var product = [UInt64](repeating: 0, count: 8)
        for i in 0..<4 {
            var carry: UInt64 = 0
            for j in 0..<4 {
                let (high, low) = a.limbs[i].multipliedFullWidth(by: b.limbs[j])
                let (s1, o1) = low.addingReportingOverflow(product[i + j])
                let (s2, o2) = s1.addingReportingOverflow(carry)
                product[i + j] = s2
                carry = high &+ (o1 ? 1 : 0) &+ (o2 ? 1 : 0)
            }
            product[i + 4] = carry
        }
        return Scalar25519(reduced: reduce(product))
    }

    /// L − self, the additive inverse.
    var negated: Scalar25519 {
        limbs == Self.zero.limbs ? self : Scalar25519(reduced: Self.subtract(Self.order, limbs))
    }

    /// Signed digits d₀…d₂₅₅ with Σ dᵢ·2ⁱ = self, each zero or odd in −15…15 and
    /// any nonzero digit followed by at least four zeros (width-5 NAF).
    var nonAdjacentForm: [Int8] {
        let width: UInt64 = 32
        let words = limbs + [0]
        var digits = [Int8](repeating: 0, count: 256)
        var position = 0
        var carry: UInt64 = 0
        while position < 256 {
            let index = position / 64
            let bit = position % 64
            let buffer = bit < 59 ? words[index] >> bit : (words[index] >> bit) | (words[index + 1] << (64 - bit))
            let window = carry &+ (buffer & (width - 1))
            if window & 1 == 0 {
                position += 1
                continue
            }
            if window < width / 2 {
                carry = 0
                digits[position] = Int8(window)
            } else {
                carry = 1
                digits[position] = Int8(Int64(window) - Int64(width))
            }
            position += 5
        }
        return digits
    }

    // MARK: Multi-precision helpers (little-endian limbs)

    private static func words(_ bytes: [UInt8]) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: (bytes.count + 7) / 8)
        for (index, byte) in bytes.enumerated() { words[index / 8] |= UInt64(byte) << (8 * UInt64(index % 8)) }
        while words.count < 4 { words.append(0) }
        return words
    }

    private static func compare(_ a: [UInt64], _ b: [UInt64]) -> Int {
        let count = max(a.count, b.count)
        for index in stride(from: count - 1, through: 0, by: -1) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }

    private static func add(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        let count = max(a.count, b.count)
        var out = [UInt64](repeating: 0, count: count)
        var carry: UInt64 = 0
        for index in 0..<count {
            let (s1, o1) = (index < a.count ? a[index] : 0).addingReportingOverflow(index < b.count ? b[index] : 0)
            let (s2, o2) = s1.addingReportingOverflow(carry)
            out[index] = s2
            carry = (o1 ? 1 : 0) + (o2 ? 1 : 0)
        }
        precondition(carry == 0, "scalar sum overflowed its limbs")
        return out
    }

    /// a − b for a ≥ b.
    private static func subtract(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        var out = a
        var borrow: UInt64 = 0
        for index in 0..<a.count {
            let (d1, o1) = a[index].subtractingReportingOverflow(index < b.count ? b[index] : 0)
            let (d2, o2) = d1.subtractingReportingOverflow(borrow)
            out[index] = d2
            borrow = (o1 ? 1 : 0) + (o2 ? 1 : 0)
        }
        precondition(borrow == 0, "scalar difference went below zero")
        return out
    }

    private static func bitLength(_ a: [UInt64]) -> Int {
        for index in stride(from: a.count - 1, through: 0, by: -1) where a[index] != 0 {
            return index * 64 + 64 - a[index].leadingZeroBitCount
        }
        return 0
    }

    /// a × b where b has two limbs.
    private static func multiply(_ a: [UInt64], by b: [UInt64]) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: a.count + b.count)
        for i in 0..<a.count {
            var carry: UInt64 = 0
            for j in 0..<b.count {
                let (high, low) = a[i].multipliedFullWidth(by: b[j])
                let (s1, o1) = low.addingReportingOverflow(out[i + j])
                let (s2, o2) = s1.addingReportingOverflow(carry)
                out[i + j] = s2
                carry = high &+ (o1 ? 1 : 0) &+ (o2 ? 1 : 0)
            }
            out[i + b.count] = carry
        }
        return out
    }

    private static func shiftedLeft(_ a: [UInt64], by shift: Int, limbs count: Int) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: count)
        let whole = shift / 64
        let part = shift % 64
        for index in 0..<a.count where index + whole < count {
            out[index + whole] |= a[index] << part
            if part > 0, index + whole + 1 < count { out[index + whole + 1] |= a[index] >> (64 - part) }
        }
        return out
    }

    /// x mod L for x below 2^512. Each step writes x = lo + 2^252·hi ≡ lo − c·hi and adds
    /// L·2^s ≥ c·hi to stay non-negative; three steps bring 512 bits under 2^255.
    private static func reduce(_ input: [UInt64]) -> [UInt64] {
        let count = 9
        var x = input + [UInt64](repeating: 0, count: count - input.count)
        while bitLength(x) > 255 {
            var low = Array(x.prefix(4))
            low[3] &= (1 << 60) - 1
            var high = [UInt64](repeating: 0, count: count)
            for index in 0..<count {
                let source = index + 3
                guard source < count else { break }
                high[index] = x[source] >> 60
                if source + 1 < count { high[index] |= x[source + 1] << 4 }
            }
            let product = multiply(Array(high.prefix(6)), by: c)
            let shift = max(0, bitLength(high) - 127)
            let multiple = shiftedLeft(order, by: shift, limbs: count)
            let padding = [UInt64](repeating: 0, count: count - product.count)
            x = subtract(add(low + [UInt64](repeating: 0, count: count - 4), multiple), product + padding)
        }
        while compare(x, order) >= 0 { x = subtract(x, order + [UInt64](repeating: 0, count: count - 4)) }
        return Array(x.prefix(4))
    }
}
