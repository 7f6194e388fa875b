/// An element of GF(2^255 − 19) in five 51-bit limbs, least significant first.
///
/// Limbs may exceed 51 bits between operations: `add` and `sub` leave them below 2^52
/// and `mul` accepts inputs below 2^54, so sums of two products never overflow the
/// 128-bit accumulators. Only `canonicalBytes` and the comparisons fully reduce.
struct FieldElement {
    var l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64

    static let mask: UInt64 = (1 << 51) - 1
    static let zero = FieldElement(l0: 0, l1: 0, l2: 0, l3: 0, l4: 0)
    static let one = FieldElement(l0: 1, l1: 0, l2: 0, l3: 0, l4: 0)

    init(l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64) {
        self.l0 = l0
        self.l1 = l1
        self.l2 = l2
        self.l3 = l3
        self.l4 = l4
    }

    init(_ small: UInt64) {
        self.init(l0: small & Self.mask, l1: small >> 51, l2: 0, l3: 0, l4: 0)
    }

    /// The low 255 bits of 32 little-endian bytes, when they are below p; the top bit
    /// (a point encoding's sign of x) is the caller's. Nil for a non-canonical value.
    init?(canonical bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == 32)
        let w0 = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        let w1 = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
        let w2 = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian
        let w3 = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self).littleEndian
        let mask = Self.mask
        self.init(
            l0: w0 & mask, l1: (w0 >> 51 | w1 << 13) & mask, l2: (w1 >> 38 | w2 << 26) & mask,
            l3: (w2 >> 25 | w3 << 39) & mask, l4: (w3 >> 12) & mask)
        // p = 2^255 − 19: the values from p to 2^255 − 1 have every upper limb full.
        if l1 == mask, l2 == mask, l3 == mask, l4 == mask, l0 >= mask - 18 { return nil }
    }

    // MARK: Arithmetic

    @inline(__always)
    static func + (a: FieldElement, b: FieldElement) -> FieldElement {
        FieldElement(l0: a.l0 &+ b.l0, l1: a.l1 &+ b.l1, l2: a.l2 &+ b.l2, l3: a.l3 &+ b.l3, l4: a.l4 &+ b.l4).carried()
    }

    /// a − b as a + 4p − b, so no limb goes below zero for b's limbs under 2^53.
    @inline(__always)
    static func - (a: FieldElement, b: FieldElement) -> FieldElement {
        FieldElement(
            l0: (a.l0 &+ 0x1F_FFFF_FFFF_FFB4) &- b.l0, l1: (a.l1 &+ 0x1F_FFFF_FFFF_FFFC) &- b.l1,
            l2: (a.l2 &+ 0x1F_FFFF_FFFF_FFFC) &- b.l2, l3: (a.l3 &+ 0x1F_FFFF_FFFF_FFFC) &- b.l3,
            l4: (a.l4 &+ 0x1F_FFFF_FFFF_FFFC) &- b.l4
        ).carried()
    }

    @inline(__always)
    static prefix func - (a: FieldElement) -> FieldElement { zero - a }

    @inline(__always)
    private static func wide(_ a: UInt64, _ b: UInt64) -> UInt128 { UInt128(a) &* UInt128(b) }

    @inline(__always)
    static func * (f: FieldElement, g: FieldElement) -> FieldElement {
        let g1 = g.l1 &* 19, g2 = g.l2 &* 19, g3 = g.l3 &* 19, g4 = g.l4 &* 19
        let r0 = wide(f.l0, g.l0) &+ wide(f.l1, g4) &+ wide(f.l2, g3) &+ wide(f.l3, g2) &+ wide(f.l4, g1)
        let r1 = wide(f.l0, g.l1) &+ wide(f.l1, g.l0) &+ wide(f.l2, g4) &+ wide(f.l3, g3) &+ wide(f.l4, g2)
        let r2 = wide(f.l0, g.l2) &+ wide(f.l1, g.l1) &+ wide(f.l2, g.l0) &+ wide(f.l3, g4) &+ wide(f.l4, g3)
        let r3 = wide(f.l0, g.l3) &+ wide(f.l1, g.l2) &+ wide(f.l2, g.l1) &+ wide(f.l3, g.l0) &+ wide(f.l4, g4)
        let r4 = wide(f.l0, g.l4) &+ wide(f.l1, g.l3) &+ wide(f.l2, g.l2) &+ wide(f.l3, g.l1) &+ wide(f.l4, g.l0)
        return reduce(r0, r1, r2, r3, r4)
    }

    @inline(__always)
    func squared() -> FieldElement {
        let d0 = l0 &* 2, d1 = l1 &* 2, d3 = l3 &* 19, d4 = l4 &* 19
        let r0 = Self.wide(l0, l0) &+ Self.wide(d1, d4) &+ Self.wide(l2 &* 2, d3)
        let r1 = Self.wide(d0, l1) &+ Self.wide(l2 &* 2, d4) &+ Self.wide(l3, d3)
        let r2 = Self.wide(d0, l2) &+ Self.wide(l1, l1) &+ Self.wide(l3 &* 2, d4)
        let r3 = Self.wide(d0, l3) &+ Self.wide(d1, l2) &+ Self.wide(l4, d4)
        let r4 = Self.wide(d0, l4) &+ Self.wide(d1, l3) &+ Self.wide(l2, l2)
        return Self.reduce(r0, r1, r2, r3, r4)
    }

    @inline(__always)
    private static func reduce(_ r0: UInt128, _ r1: UInt128, _ r2: UInt128, _ r3: UInt128, _ r4: UInt128) -> FieldElement {
        var carry = r0 >> 51
        let o0 = UInt64(truncatingIfNeeded: r0) & mask
        let s1 = r1 &+ carry
        carry = s1 >> 51
        let o1 = UInt64(truncatingIfNeeded: s1) & mask
        let s2 = r2 &+ carry
        carry = s2 >> 51
        let o2 = UInt64(truncatingIfNeeded: s2) & mask
        let s3 = r3 &+ carry
        carry = s3 >> 51
        let o3 = UInt64(truncatingIfNeeded: s3) & mask
        let s4 = r4 &+ carry
        carry = s4 >> 51
        let o4 = UInt64(truncatingIfNeeded: s4) & mask
        // carry < 2^77 here, so 19 × carry fits the 128-bit sum below.
        let t0 = UInt128(o0) &+ carry &* 19
        let n0 = UInt64(truncatingIfNeeded: t0) & mask
        let n1 = o1 &+ UInt64(truncatingIfNeeded: t0 >> 51)
        return FieldElement(l0: n0, l1: n1, l2: o2, l3: o3, l4: o4)
    }

    /// One carry pass: every limb below 2^51 except l1, which may reach 2^51 + 2^13.
    @inline(__always)
    func carried() -> FieldElement {
        let mask = Self.mask
        var c = l0 >> 51
        let a0 = l0 & mask
        var a1 = l1 &+ c
        c = a1 >> 51
        a1 &= mask
        var a2 = l2 &+ c
        c = a2 >> 51
        a2 &= mask
        var a3 = l3 &+ c
        c = a3 >> 51
        a3 &= mask
        var a4 = l4 &+ c
        c = a4 >> 51
        a4 &= mask
        let b0 = a0 &+ c &* 19
        return FieldElement(l0: b0 & mask, l1: a1 &+ (b0 >> 51), l2: a2, l3: a3, l4: a4)
    }

    /// The unique representative below p, as limbs.
    func reduced() -> FieldElement {
        let mask = Self.mask
        var h = carried().carried()
        // q = 1 exactly when h ≥ p, that is when h + 19 reaches 2^255.
        var q = (h.l0 &+ 19) >> 51
        q = (h.l1 &+ q) >> 51
        q = (h.l2 &+ q) >> 51
        q = (h.l3 &+ q) >> 51
        q = (h.l4 &+ q) >> 51
        h.l0 = h.l0 &+ 19 &* q
        h.l1 = h.l1 &+ (h.l0 >> 51)
        h.l0 &= mask
        h.l2 = h.l2 &+ (h.l1 >> 51)
        h.l1 &= mask
        h.l3 = h.l3 &+ (h.l2 >> 51)
        h.l2 &= mask
        h.l4 = h.l4 &+ (h.l3 >> 51)
        h.l3 &= mask
        h.l4 &= mask
        return h
    }

    var canonicalBytes: [UInt8] {
        let h = reduced()
        let words = [h.l0 | h.l1 << 51, h.l1 >> 13 | h.l2 << 38, h.l2 >> 26 | h.l3 << 25, h.l3 >> 39 | h.l4 << 12]
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for word in words { withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    var isZero: Bool {
        let h = reduced()
        return h.l0 | h.l1 | h.l2 | h.l3 | h.l4 == 0
    }

    /// The low bit of the reduced value: the "sign" of x in a point encoding.
    var isNegative: Bool { reduced().l0 & 1 == 1 }

    func equals(_ other: FieldElement) -> Bool { (self - other).isZero }

    // MARK: Exponentiation

    @inline(__always)
    func squared(times: Int) -> FieldElement {
        var x = self
        for _ in 0..<times { x = x.squared() }
        return x
    }

    /// self^(2^250 − 1) and self^11, the shared start of inversion and square roots.
    private func power2250Minus1() -> (FieldElement, FieldElement) {
        let z2 = squared()
        let z9 = z2.squared(times: 2) * self
        let z11 = z9 * z2
        let z2_5_0 = z11.squared() * z9
        let z2_10_0 = z2_5_0.squared(times: 5) * z2_5_0
        let z2_20_0 = z2_10_0.squared(times: 10) * z2_10_0
        let z2_40_0 = z2_20_0.squared(times: 20) * z2_20_0
        let z2_50_0 = z2_40_0.squared(times: 10) * z2_10_0
        let z2_100_0 = z2_50_0.squared(times: 50) * z2_50_0
        let z2_200_0 = z2_100_0.squared(times: 100) * z2_100_0
        let z2_250_0 = z2_200_0.squared(times: 50) * z2_50_0
        return (z2_250_0, z11)
    }

    /// self^(p − 2): the inverse, or zero for zero.
    func inverted() -> FieldElement {
        let (z2_250_0, z11) = power2250Minus1()
        return z2_250_0.squared(times: 5) * z11
    }

    /// self^((p − 5) / 8) = self^(2^252 − 3), the core of a square root.
    func power22523() -> FieldElement {
        power2250Minus1().0.squared(times: 2) * self
    }

    // MARK: Constants

    /// The curve's d = −121665 / 121666.
    static let d: FieldElement = (-FieldElement(121_665)) * FieldElement(121_666).inverted()
    static let d2: FieldElement = d + d
    /// √−1 = 2^((p − 1) / 4).
    static let sqrtMinusOne: FieldElement = {
        let bytes: [UInt8] = [
            0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f,
            0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
        ]
        return bytes.withUnsafeBytes { FieldElement(canonical: $0)! }
    }()
}
