import CivitasCore
@testable import CivitasCrypto
import Crypto
import Foundation
import Testing

private func bytes(_ hex: String) -> [UInt8] { [UInt8](hex: hex)! }

private func field(_ hex: String) -> FieldElement? { bytes(hex).withUnsafeBytes { FieldElement(canonical: $0) } }

/// Deterministic pseudo-random bytes, so a failure names what to replay.
private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

@Suite struct Field25519Tests {
    @Test func constantsAreTheCurves() {
        #expect(FieldElement.d.canonicalBytes == bytes("a3785913ca4deb75abd841414d0a700098e879777940c78c73fe6f2bee6c0352"))
        #expect((FieldElement.sqrtMinusOne.squared() + .one).isZero)
        #expect(EdwardsPoint.base.encoded == [0x58] + [UInt8](repeating: 0x66, count: 31))
    }

    @Test func onlyValuesBelowThePrimeDecode() {
        // p − 1 decodes; p and 2^255 − 1 do not.
        #expect(field("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") != nil)
        #expect(field("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") == nil)
        #expect(field("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") == nil)
    }

    @Test func arithmeticAgreesWithItsIdentities() {
        var random = SplitMix(state: 7)
        for _ in 0..<200 {
            var raw = random.bytes(32)
            raw[31] &= 0x7F
            guard let a = raw.withUnsafeBytes({ FieldElement(canonical: $0) }) else { continue }
            var other = random.bytes(32)
            other[31] &= 0x7F
            guard let b = other.withUnsafeBytes({ FieldElement(canonical: $0) }) else { continue }
            #expect(a.canonicalBytes == raw)
            #expect((a * b).equals(b * a))
            #expect(a.squared().equals(a * a))
            #expect(((a + b) - b).equals(a))
            #expect(((a - b) + b).equals(a))
            #expect((a * (a + b)).equals(a.squared() + a * b))
            if !a.isZero { #expect((a * a.inverted()).equals(.one)) }
        }
    }
}

@Suite struct Scalar25519Tests {
    @Test func reductionMatchesIndependentlyComputedValues() {
        let vectors = [
            (String(repeating: "ff", count: 64), "000f9c44e31106a447938568a71b0ed065bef517d273ecce3d9a307c1b419903"),
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
                "7a3c6282f02d37a05023b60d5428e6cc5961d4c31221937adae0b574e4d07205"
            ),
            (
                "0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186abd0f51a3f6489aed3f81d42678cb1d6fb20456a8fb4d9fe23486d92b7dc0126",
                "e4bd7e91ae5bc31c71141e4ec81f5f7f93ee3d65da95bfe3d45af0f452e56808"
            ),
        ]
        for (input, reduced) in vectors {
            #expect(Scalar25519(reducing: bytes(input)).bytes == bytes(reduced))
        }
    }

    @Test func productAndSumMatchIndependentlyComputedValues() throws {
        let a = try #require(Scalar25519(canonical: bytes("b09e7ae74bcaad47e4f6d2d9cde5e40cd5e2effc091623303d4a5764717e8b08")))
        let b = try #require(Scalar25519(canonical: bytes("9b808e72a47b1e0e3922682a6aada10fd3f00d2a4764819ebbd8f5122f4c6906")))
        #expect((a * b).bytes == bytes("1adad369c260b9b7650eba9aea2334e7143112f2644d21b0dd5eb3f30d61580c"))
        #expect((a + b).bytes == bytes("4b1f095af045cc551d193b043893861ca8d3fd26517aa4cef8224d77a0caf40e"))
        #expect((a + a.negated) == .zero)
    }

    @Test func onlyValuesBelowTheOrderAreCanonical() {
        let order = Scalar25519.order.flatMap { limb in withUnsafeBytes(of: limb.littleEndian) { Array($0) } }
        #expect(Scalar25519(canonical: order) == nil)
        var belowOrder = order
        belowOrder[0] -= 1
        #expect(Scalar25519(canonical: belowOrder) != nil)
        #expect(Scalar25519(reducing: order) == .zero)
    }

    @Test func signedDigitsAddBackToTheScalar() {
        var random = SplitMix(state: 11)
        for _ in 0..<100 {
            let scalar = Scalar25519(reducing: random.bytes(64))
            let digits = scalar.nonAdjacentForm
            // Σ dᵢ·2ⁱ, evaluated from the top as a scalar.
            var sum = Scalar25519.zero
            let two = Scalar25519(low: 2, high: 0)
            for digit in digits.reversed() {
                sum = sum * two
                if digit > 0 { sum = sum + Scalar25519(low: UInt64(digit), high: 0) }
                if digit < 0 { sum = sum + Scalar25519(low: UInt64(-Int(digit)), high: 0).negated }
            }
            #expect(sum == scalar)
            for (index, digit) in digits.enumerated() where digit != 0 {
                #expect(digit % 2 != 0 && abs(Int(digit)) <= 15)
                #expect(digits[(index + 1)..<min(index + 5, 256)].allSatisfy { $0 == 0 })
            }
        }
    }
}

@Suite struct Ed25519VerificationTests {
    /// RFC 8032 §7.1, tests 1–3: (public key, message, signature).
    static let vectors = [
        (
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
        (
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
        (
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
        ),
    ]

    /// The clamped secret scalar a of an RFC 8032 seed (its public key is [a]B).
    static func secretScalar(seed: [UInt8]) -> Scalar25519 {
        var expanded = Array(SHA512.hash(data: seed))
        expanded[0] &= 248
        expanded[31] &= 127
        expanded[31] |= 64
        return Scalar25519(reducing: expanded[0..<32])
    }

    @Test func rfc8032VectorsVerify() throws {
        var items: [Ed25519Verification.Item] = []
        for (key, message, signature) in Self.vectors {
            let item = Ed25519Verification.Item(publicKey: bytes(key), message: message.isEmpty ? [] : bytes(message), signature: bytes(signature))
            let reference = try Curve25519.Signing.PublicKey(rawRepresentation: item.publicKey)
            #expect(reference.isValidSignature(item.signature, for: item.message))
            #expect(Ed25519Verification.isValid(signature: item.signature, message: item.message, publicKey: item.publicKey))
            items.append(item)
        }
        #expect(Ed25519Verification.verify(items) == [true, true, true])
    }

    /// Signatures by swift-crypto's signer: every one verifies alone and in batches, and
    /// every altered one fails exactly where BoringSSL fails it.
    @Test func agreesWithBoringSSLOnSignedAndAlteredSignatures() throws {
        var random = SplitMix(state: 42)
        let keys = (0..<8).map { _ in Curve25519.Signing.PrivateKey() }
        var items: [Ed25519Verification.Item] = []
        for index in 0..<96 {
            let key = keys[index % keys.count]
            let message = random.bytes(Int(random.next() % 80))
            items.append(
                .init(publicKey: Array(key.publicKey.rawRepresentation), message: message, signature: Array(try key.signature(for: message))))
        }
        #expect(Ed25519Verification.verify(items).allSatisfy { $0 })
        #expect(items.prefix(5).allSatisfy { Ed25519Verification.isValid(signature: $0.signature, message: $0.message, publicKey: $0.publicKey) })

        var altered = items
        altered[3].message.append(1)
        altered[17].signature[5] ^= 0x10
        altered[40].signature[40] ^= 0x01
        altered[41].publicKey = items[42].publicKey
        altered[77].signature = Array(altered[77].signature.prefix(63))
        let expected = altered.map { item in
            (try? Curve25519.Signing.PublicKey(rawRepresentation: item.publicKey))?.isValidSignature(item.signature, for: item.message) ?? false
        }
        #expect(expected.filter { !$0 }.count == 5)
        #expect(Ed25519Verification.verify(altered) == expected)
        for index in [3, 17, 40, 41, 77] {
            let item = altered[index]
            #expect(!Ed25519Verification.isValid(signature: item.signature, message: item.message, publicKey: item.publicKey))
        }
    }

    @Test func anSAtOrAboveTheOrderIsRefused() throws {
        let key = Curve25519.Signing.PrivateKey()
        let message: [UInt8] = [1, 2, 3]
        var signature = Array(try key.signature(for: message))
        // S + L: the same residue, a non-canonical encoding.
        var carry: UInt16 = 0
        let order = Scalar25519.order.flatMap { limb in withUnsafeBytes(of: limb.littleEndian) { Array($0) } }
        for index in 0..<32 {
            let sum = UInt16(signature[32 + index]) + UInt16(order[index]) + carry
            signature[32 + index] = UInt8(truncatingIfNeeded: sum)
            carry = sum >> 8
        }
        #expect(carry == 0)
        let publicKey = Array(key.publicKey.rawRepresentation)
        #expect(!Ed25519Verification.isValid(signature: signature, message: message, publicKey: publicKey))
        #expect(Ed25519Verification.verify([.init(publicKey: publicKey, message: message, signature: signature)]) == [false])
    }

    @Test func encodingsThatAreNotPointsAreRefused() {
        // y = p (non-canonical), x = 0 with the sign bit set, and a y with no x on the curve.
        #expect(EdwardsPoint(decoding: bytes("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")) == nil)
        #expect(EdwardsPoint(decoding: bytes("0100000000000000000000000000000000000000000000000000000000000080")) == nil)
        #expect(EdwardsPoint(decoding: bytes("0200000000000000000000000000000000000000000000000000000000000000")) == nil)
        #expect(EdwardsPoint(decoding: bytes("0100000000000000000000000000000000000000000000000000000000000000"))?.isIdentity == true)
        #expect(!Ed25519Verification.isValid(signature: [UInt8](repeating: 0, count: 64), message: [], publicKey: [UInt8](repeating: 0xff, count: 32)))
    }

    @Test func pointArithmeticMatchesTheSigner() throws {
        // A = [a]B for the clamped secret scalar of RFC 8032 test 1.
        let a = Self.secretScalar(seed: bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        let point = Ed25519Verification.multiScalar([(a.nonAdjacentForm, Ed25519Verification.baseMultiples)])
        #expect(point.encoded == bytes("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
        // [L − 1]B + B is the identity.
        let almost = Ed25519Verification.multiScalar([(Scalar25519.one.negated.nonAdjacentForm, Ed25519Verification.baseMultiples)])
        #expect((almost + EdwardsPoint.base.cached).isIdentity)
    }

    /// The cofactored rule accepts an R carrying a small-order component (RFC 8032's
    /// cofactorless check, as BoringSSL runs it, does not). Whatever a node's batch holds,
    /// such a signature is accepted alone and in every batch: validity never depends on
    /// the company a transaction keeps.
    @Test func aSmallOrderComponentIsJudgedTheSameAloneAndInABatch() throws {
        let publicKey = bytes("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
        let a = Self.secretScalar(seed: bytes("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"))
        let r = Scalar25519(reducing: [UInt8](repeating: 7, count: 64))
        // (0, −1) has order 2.
        let torsion = try #require(EdwardsPoint(decoding: bytes("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")))
        let rPoint = Ed25519Verification.multiScalar([(r.nonAdjacentForm, Ed25519Verification.baseMultiples)]) + torsion.cached
        let rBytes = rPoint.encoded
        let message: [UInt8] = Array("small order".utf8)
        let k = Scalar25519(reducing: Array(SHA512.hash(data: rBytes + publicKey + message)))
        let signature = rBytes + (r + k * a).bytes

        let reference = try Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        #expect(!reference.isValidSignature(signature, for: message))
        #expect(Ed25519Verification.isValid(signature: signature, message: message, publicKey: publicKey))

        let signer = Curve25519.Signing.PrivateKey()
        var items = try (0..<10).map { index in
            Ed25519Verification.Item(
                publicKey: Array(signer.publicKey.rawRepresentation), message: [UInt8(index)], signature: Array(try signer.signature(for: [UInt8(index)])))
        }
        items.insert(.init(publicKey: publicKey, message: message, signature: signature), at: 4)
        #expect(Ed25519Verification.verify(items) == [Bool](repeating: true, count: 11))
        items[7].message = [99]
        #expect(Ed25519Verification.verify(items) == (0..<11).map { $0 != 7 })
    }
}
