import CCivitasOpenSSL
import CivitasCore
import Crypto
import Foundation

public struct CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidPrivateKey = "crypto.invalid_private_key"
        case signingFailed = "crypto.signing_failed"
        case unsupportedScheme = "crypto.unsupported_scheme"
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A private key of any scheme, with its public key. Ed25519, P-256 and ML-DSA-65 come
/// from swift-crypto; SM2 from the system OpenSSL.
public struct PrivateKey: Sendable {
    public let scheme: SignatureScheme
    /// 32 bytes for every scheme: Ed25519 and ML-DSA-65 seeds, P-256 and SM2 scalars.
    public let rawRepresentation: [UInt8]
    public let publicKey: PublicKey
    private let backing: Backing

    private enum Backing: @unchecked Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case sm2
        case mldsa65(MLDSA65.PrivateKey)
    }

    public static func generate(_ scheme: SignatureScheme) throws(CryptoError) -> PrivateKey {
        switch scheme {
        case .ed25519:
            return try PrivateKey(scheme: scheme, rawRepresentation: Array(Curve25519.Signing.PrivateKey().rawRepresentation))
        case .p256:
            return try PrivateKey(scheme: scheme, rawRepresentation: Array(P256.Signing.PrivateKey().rawRepresentation))
        case .sm2:
            var secret = [UInt8](repeating: 0, count: 32)
            var point = [UInt8](repeating: 0, count: 65)
            guard civitas_sm2_generate(&secret, &point) == 1 else {
                throw CryptoError(.signingFailed, "OpenSSL could not generate an SM2 key")
            }
            return try PrivateKey(scheme: scheme, rawRepresentation: secret)
        case .mldsa65:
            let seed: [UInt8]
            do { seed = Array(try MLDSA65.PrivateKey().seedRepresentation) } catch {
                throw CryptoError(.signingFailed, "ML-DSA-65 key generation failed: \(error)")
            }
            return try PrivateKey(scheme: scheme, rawRepresentation: seed)
        }
    }

    public init(scheme: SignatureScheme, rawRepresentation raw: [UInt8]) throws(CryptoError) {
        guard raw.count == scheme.privateKeyBytes else {
            throw CryptoError(.invalidPrivateKey, "\(scheme) private keys are \(scheme.privateKeyBytes) bytes, got \(raw.count)")
        }
        self.scheme = scheme
        self.rawRepresentation = raw
        do {
            switch scheme {
            case .ed25519:
                let key = try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
                backing = .ed25519(key)
                publicKey = try PublicKey(scheme: scheme, bytes: Array(key.publicKey.rawRepresentation))
            case .p256:
                let key = try P256.Signing.PrivateKey(rawRepresentation: raw)
                backing = .p256(key)
                publicKey = try PublicKey(scheme: scheme, bytes: Array(key.publicKey.x963Representation))
            case .sm2:
                var point = [UInt8](repeating: 0, count: 65)
                guard civitas_sm2_public_from_private(raw, &point) == 1 else {
                    throw CryptoError(.invalidPrivateKey, "not an SM2 scalar in [1, n-1]")
                }
                backing = .sm2
                publicKey = try PublicKey(scheme: scheme, bytes: point)
            case .mldsa65:
                let key = try MLDSA65.PrivateKey(seedRepresentation: raw, publicKey: nil)
                backing = .mldsa65(key)
                publicKey = try PublicKey(scheme: scheme, bytes: Array(key.publicKey.rawRepresentation))
            }
        } catch let error as CryptoError {
            throw error
        } catch {
            throw CryptoError(.invalidPrivateKey, "\(scheme) rejected the key: \(error)")
        }
    }

    public func sign(_ message: [UInt8]) throws(CryptoError) -> Signature {
        let raw: [UInt8]
        do {
            switch backing {
            case .ed25519(let key): raw = Array(try key.signature(for: message))
            case .p256(let key): raw = Array(try key.signature(for: message).rawRepresentation)
            case .mldsa65(let key): raw = Array(try key.signature(for: message))
            case .sm2:
                var out = [UInt8](repeating: 0, count: 64)
                guard civitas_sm2_sign(rawRepresentation, publicKey.bytes, message, message.count, &out) == 1 else {
                    throw CryptoError(.signingFailed, "OpenSSL SM2 signing failed")
                }
                raw = out
            }
            return try Signature(scheme: scheme, bytes: raw)
        } catch let error as CryptoError {
            throw error
        } catch {
            throw CryptoError(.signingFailed, "\(scheme) signing failed: \(error)")
        }
    }
}

/// Verifies signatures of every scheme. Stateless and thread-safe, so the mempool can
/// run it on many threads at once.
public struct SignatureVerifiers: SignatureVerifier {
    public init() {}

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        guard signature.scheme == key.scheme else { return false }
        switch key.scheme {
        case .ed25519:
            guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key.bytes) else { return false }
            return publicKey.isValidSignature(signature.bytes, for: message)
        case .p256:
            guard let publicKey = try? P256.Signing.PublicKey(x963Representation: key.bytes),
                let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature.bytes)
            else { return false }
            return publicKey.isValidSignature(ecdsa, for: message)
        case .sm2:
            return civitas_sm2_verify(key.bytes, message, message.count, signature.bytes) == 1
        case .mldsa65:
            guard let publicKey = try? MLDSA65.PublicKey(rawRepresentation: key.bytes) else { return false }
            return publicKey.isValidSignature(signature.bytes, for: message)
        }
    }

    /// Ed25519 by Civitas's cofactored rule, in batches (ADR 0008); other schemes one by one.
    public func areValidTransactionSignatures(_ checks: [SignatureCheck]) -> [Bool] {
        var results = [Bool](repeating: false, count: checks.count)
        var edwards: [Int] = []
        for (index, check) in checks.enumerated() {
            guard check.signature.scheme == check.key.scheme else { continue }
            if check.key.scheme == .ed25519 {
                edwards.append(index)
            } else {
                results[index] = isValid(check.signature, of: check.message, by: check.key)
            }
        }
        let answers = Ed25519Verification.verify(
            edwards.map { .init(publicKey: checks[$0].key.bytes, message: checks[$0].message, signature: checks[$0].signature.bytes) })
        for (index, answer) in zip(edwards, answers) { results[index] = answer }
        return results
    }
}
