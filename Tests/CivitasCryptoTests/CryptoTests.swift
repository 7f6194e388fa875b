import CivitasCore
import CivitasCrypto
import CivitasTesting
import struct Crypto.SHA256
import Foundation
import Testing

@Suite struct HashVectorTests {
    @Test func sm3MatchesGBT32905() {
        #expect(SM3Hasher().hash(Array("abc".utf8)).hex == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
        let long = Array(String(repeating: "abcd", count: 16).utf8)
        #expect(SM3Hasher().hash(long).hex == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
    }

    @Test func sha256MatchesFIPS180() {
        #expect(SHA256Hasher().hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func sha256GivesSwiftCryptosDigestsAtEveryLengthAroundTheBlocks() {
        // Lengths around the 64-byte blocks and the 55/56-byte padding edge.
        for length in [0, 1, 54, 55, 56, 63, 64, 65, 82, 119, 120, 127, 128, 129, 1_000] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let expected = SHA256.hash(data: bytes).withUnsafeBytes { Hash(raw: $0) }
            #expect(SHA256Hasher().hash(bytes) == expected, "length \(length)")
            #expect(bytes.withUnsafeBytes { SHA256Hasher().hash(raw: $0) } == expected)
        }
    }

    @Test func aPairOfHashesUnderADomainIsTheHashOfLabelZeroAndBoth() {
        let first = SHA256Hasher().hash([1])
        let second = SHA256Hasher().hash([2])
        for hasher in [ChainHasher(.sha256), ChainHasher(.sm3)] {
            #expect(hasher.hash(.stateNode, first, second) == hasher.hash(Array("civitas.state.node".utf8) + [0] + first.bytes + second.bytes))
        }
    }

    @Test func chainHasherFollowsTheSuite() {
        #expect(ChainHasher(.sm3).hash([1, 2]) == SM3Hasher().hash([1, 2]))
        #expect(ChainHasher(.sha256).hash([1, 2]) == SHA256Hasher().hash([1, 2]))
    }

    @Test func domainsSeparate() {
        let hasher = SHA256Hasher()
        #expect(hasher.hash(.transaction, [1]) != hasher.hash(.blockHeader, [1]))
    }
}

@Suite struct SignatureTests {
    @Test func ed25519MatchesRFC8032TestOne() throws {
        let key = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!)
        #expect(key.publicKey.bytes.hexString == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let expected = try Signature(
            scheme: .ed25519,
            bytes: [UInt8](hex: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")!)
        #expect(try key.sign([]) == expected)
        #expect(SignatureVerifiers().isValid(expected, of: [], by: key.publicKey))
    }

    @Test(arguments: SignatureScheme.allCases)
    func signsAndVerifies(_ scheme: SignatureScheme) throws {
        let key = try PrivateKey.generate(scheme)
        #expect(key.publicKey.bytes.count == scheme.publicKeyBytes)
        let message = Array("civitas".utf8)
        let signature = try key.sign(message)
        #expect(signature.bytes.count == scheme.signatureBytes)
        let verifier = SignatureVerifiers()
        #expect(verifier.isValid(signature, of: message, by: key.publicKey))
        #expect(!verifier.isValid(signature, of: message + [0], by: key.publicKey))
        var tampered = signature.bytes
        tampered[tampered.count / 2] ^= 1
        #expect(!verifier.isValid(try Signature(scheme: scheme, bytes: tampered), of: message, by: key.publicKey))
        let other = try PrivateKey.generate(scheme)
        #expect(!verifier.isValid(signature, of: message, by: other.publicKey))
        // The private key round-trips through its raw form.
        #expect(try PrivateKey(scheme: scheme, rawRepresentation: key.rawRepresentation).publicKey == key.publicKey)
    }

    @Test func schemeMismatchNeverVerifies() throws {
        let ed = try PrivateKey.generate(.ed25519)
        let p256 = try PrivateKey.generate(.p256)
        let signature = try p256.sign([1])
        #expect(!SignatureVerifiers().isValid(signature, of: [1], by: ed.publicKey))
    }

    @Test func invalidKeysAreRefused() {
        #expect(throws: CryptoError.self) { try PrivateKey(scheme: .sm2, rawRepresentation: [UInt8](repeating: 0, count: 32)) }
        #expect(throws: CryptoError.self) { try PrivateKey(scheme: .sm2, rawRepresentation: [UInt8](repeating: 0xff, count: 32)) }
        #expect(throws: CryptoError.self) { try PrivateKey(scheme: .ed25519, rawRepresentation: [1, 2]) }
        // A point not on the curve verifies nothing.
        let bogus = try! PublicKey(scheme: .sm2, bytes: [4] + [UInt8](repeating: 7, count: 64))
        let signature = try! Signature(scheme: .sm2, bytes: [UInt8](repeating: 1, count: 64))
        #expect(!SignatureVerifiers().isValid(signature, of: [1], by: bogus))
    }
}

/// SM2 interoperability with the `openssl` command line, in both directions, with the
/// GB/T 32918 default identifier.
@Suite struct SM2InteropTests {
    func openssl(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test func opensslVerifiesOurSignatureAndWeVerifyItsSignature() throws {
        let directory = TemporaryDirectory("sm2")
        defer { directory.remove() }
        let key = try PrivateKey.generate(.sm2)
        let message = Array("message signed for GB/T 32918".utf8)
        let dir = directory.path
        try Data(message).write(to: URL(fileURLWithPath: dir + "/msg"))
        try Data(SM2Interop.publicKeyDER(key.publicKey)!).write(to: URL(fileURLWithPath: dir + "/pub.der"))
        try Data(SM2Interop.privateKeyPEM(key)!.utf8).write(to: URL(fileURLWithPath: dir + "/key.pem"))

        // Ours → openssl.
        let signature = try key.sign(message)
        try Data(SM2Interop.signatureDER(signature)!).write(to: URL(fileURLWithPath: dir + "/ours.sig"))
        let verifyArguments = [
            "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-keyform", "DER", "-inkey", dir + "/pub.der",
            "-in", dir + "/msg", "-pkeyopt", "distid:1234567812345678",
        ]
        #expect(try openssl(verifyArguments + ["-sigfile", dir + "/ours.sig"]) == 0)
        // Without the default ID openssl must refuse it: proof the ID is really used.
        let withoutId = Array(verifyArguments.dropLast(2)) + ["-sigfile", dir + "/ours.sig"]
        #expect(try openssl(withoutId) != 0)

        // openssl → ours.
        #expect(
            try openssl([
                "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", dir + "/key.pem", "-in", dir + "/msg",
                "-pkeyopt", "distid:1234567812345678", "-out", dir + "/theirs.sig",
            ]) == 0)
        let theirs = try Data(contentsOf: URL(fileURLWithPath: dir + "/theirs.sig"))
        let converted = try #require(SM2Interop.signature(fromDER: Array(theirs)))
        #expect(SignatureVerifiers().isValid(converted, of: message, by: key.publicKey))
    }
}
