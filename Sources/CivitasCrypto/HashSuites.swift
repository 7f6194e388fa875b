import CCivitasOpenSSL
import CivitasCore
import Crypto

/// SHA-256 from swift-crypto: the international suite.
public struct SHA256Hasher: CivitasCore.HashFunction {
    public init() {}
    public var suite: HashSuiteID { .sha256 }
    public func hash(_ bytes: [UInt8]) -> Hash {
        SHA256.hash(data: bytes).withUnsafeBytes { Hash(raw: $0) }
    }
}

/// SM3 (GB/T 32905) from the system OpenSSL 3: the national suite.
public struct SM3Hasher: CivitasCore.HashFunction {
    public init() {}
    public var suite: HashSuiteID { .sm3 }
    public func hash(_ bytes: [UInt8]) -> Hash {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                civitas_sm3(input.baseAddress, input.count, output.baseAddress)
            }
        }
        // OpenSSL without SM3 is a broken installation, not bad input.
        precondition(ok == 1, "OpenSSL SM3 failed: is libssl3 built without SM3?")
        return out.withUnsafeBytes { Hash(raw: $0) }
    }
}

/// The hash function a chain's genesis names, boxed once so callers need no generics.
public struct ChainHasher: CivitasCore.HashFunction {
    private let sha256: Bool
    public init(_ suite: HashSuiteID) { sha256 = suite == .sha256 }
    public var suite: HashSuiteID { sha256 ? .sha256 : .sm3 }
    @inline(__always)
    public func hash(_ bytes: [UInt8]) -> Hash {
        sha256 ? SHA256Hasher().hash(bytes) : SM3Hasher().hash(bytes)
    }
}
