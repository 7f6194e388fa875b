import CCivitasOpenSSL
import CivitasCore

/// Conversions between Civitas' raw SM2 encodings and the DER/PEM forms other SM2 tools
/// (the `openssl` command line, GM/T toolkits) read and write.
public enum SM2Interop {
    public static func publicKeyDER(_ key: PublicKey) -> [UInt8]? {
        guard key.scheme == .sm2 else { return nil }
        return convert(capacity: 256) { civitas_sm2_public_to_der(key.bytes, $0, $1) }
    }

    public static func privateKeyPEM(_ key: PrivateKey) -> String? {
        guard key.scheme == .sm2 else { return nil }
        return convert(capacity: 1024) { civitas_sm2_private_to_pem(key.rawRepresentation, key.publicKey.bytes, $0, $1) }
            .map { String(decoding: $0, as: UTF8.self) }
    }

    public static func signatureDER(_ signature: Signature) -> [UInt8]? {
        guard signature.scheme == .sm2 else { return nil }
        return convert(capacity: 80) { civitas_sm2_signature_to_der(signature.bytes, $0, $1) }
    }

    public static func signature(fromDER der: [UInt8]) -> Signature? {
        var raw = [UInt8](repeating: 0, count: 64)
        guard civitas_sm2_signature_from_der(der, der.count, &raw) == 1 else { return nil }
        return try? Signature(scheme: .sm2, bytes: raw)
    }

    private static func convert(
        capacity: Int, _ body: (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<Int>) -> Int32
    ) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: capacity)
        var length = capacity
        let ok = out.withUnsafeMutableBufferPointer { body($0.baseAddress!, &length) }
        guard ok == 1 else { return nil }
        return Array(out.prefix(length))
    }
}
