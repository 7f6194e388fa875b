/// A point of edwards25519 (−x² + y² = 1 + d·x²·y²) in extended coordinates:
/// x = X/Z, y = Y/Z, x·y = T/Z. Formulas are Hisil–Wong–Carter–Dawson (2008) for a = −1.
struct EdwardsPoint {
    var x: FieldElement, y: FieldElement, z: FieldElement, t: FieldElement

    static let identity = EdwardsPoint(x: .zero, y: .one, z: .one, t: .zero)

    /// The base point B: y = 4/5, x even.
    static let base: EdwardsPoint = {
        let encoding: [UInt8] = [0x58] + [UInt8](repeating: 0x66, count: 31)
        return EdwardsPoint(decoding: encoding)!
    }()

    /// Decodes a 32-byte encoding (RFC 8032 §5.1.3) and refuses a y that is not below p,
    /// a y with no point on the curve, and x = 0 with its sign bit set.
    init?(decoding bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        guard let decoded = bytes.withUnsafeBytes({ FieldElement(canonical: $0) }) else { return nil }
        let sign = bytes[31] >> 7 == 1
        let y = decoded
        let y2 = y.squared()
        let u = y2 - .one
        let v = y2 * FieldElement.d + .one
        let v3 = v.squared() * v
        var x = u * v3 * (u * v3.squared() * v).power22523()
        let check = v * x.squared()
        if !check.equals(u) {
            guard check.equals(-u) else { return nil }
            x = x * FieldElement.sqrtMinusOne
        }
        if x.isZero && sign { return nil }
        if x.isNegative != sign { x = -x }
        self.init(x: x, y: y, z: .one, t: x * y)
    }

    init(x: FieldElement, y: FieldElement, z: FieldElement, t: FieldElement) {
        self.x = x
        self.y = y
        self.z = z
        self.t = t
    }

    /// The point with its additive form precomputed.
    var cached: CachedPoint {
        CachedPoint(yPlusX: y + x, yMinusX: y - x, z2: z + z, t2d: t * FieldElement.d2)
    }

    @inline(__always)
    func doubled() -> EdwardsPoint {
        let a = x.squared()
        let b = y.squared()
        let c = z.squared() + z.squared()
        let h = a + b
        let e = h - (x + y).squared()
        let g = a - b
        let f = c + g
        return EdwardsPoint(x: e * f, y: g * h, z: f * g, t: e * h)
    }

    @inline(__always)
    static func + (p: EdwardsPoint, q: CachedPoint) -> EdwardsPoint {
        let a = (p.y - p.x) * q.yMinusX
        let b = (p.y + p.x) * q.yPlusX
        let c = p.t * q.t2d
        let d = p.z * q.z2
        let e = b - a
        let f = d - c
        let g = d + c
        let h = b + a
        return EdwardsPoint(x: e * f, y: g * h, z: f * g, t: e * h)
    }

    @inline(__always)
    static func - (p: EdwardsPoint, q: CachedPoint) -> EdwardsPoint { p + q.negated }

    /// Whether this is the neutral element (0, 1).
    var isIdentity: Bool { x.isZero && y.equals(z) }

    /// 8·P: what the cofactored verification equation compares with the identity.
    var timesCofactor: EdwardsPoint { doubled().doubled().doubled() }

    var encoded: [UInt8] {
        let inverse = z.inverted()
        var bytes = (y * inverse).canonicalBytes
        if (x * inverse).isNegative { bytes[31] |= 0x80 }
        return bytes
    }
}

/// (Y + X, Y − X, 2Z, 2d·T): a point ready to be added.
struct CachedPoint {
    var yPlusX: FieldElement, yMinusX: FieldElement, z2: FieldElement, t2d: FieldElement

    var negated: CachedPoint { CachedPoint(yPlusX: yMinusX, yMinusX: yPlusX, z2: z2, t2d: -t2d) }
}

/// The odd multiples P, 3P, …, 15P: what a width-5 signed-digit recoding adds.
struct OddMultiples {
    var points: [CachedPoint]

    init(_ point: EdwardsPoint) {
        let double = point.doubled().cached
        var current = point
        var points: [CachedPoint] = [current.cached]
        points.reserveCapacity(8)
        for _ in 1..<8 {
            current = current + double
            points.append(current.cached)
        }
        self.points = points
    }

    /// ±|digit|·P for an odd digit in −15…15.
    @inline(__always)
    func add(_ digit: Int8, to accumulator: EdwardsPoint) -> EdwardsPoint {
        digit > 0
            ? accumulator + points[Int(digit) >> 1]
            : accumulator - points[Int(-digit) >> 1]
    }
}
