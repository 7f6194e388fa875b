import CCivitasOpenSSL
import CivitasCore
import Crypto

/// SHA-256 from the system OpenSSL 3 (its hardware rounds, a context on the stack):
/// the international suite. swift-crypto's `SHA256` gives the same digests (tested) but
/// allocates a context per hash, and the state tree hashes several times per key written.
public struct SHA256Hasher: CivitasCore.HashFunction {
    public init() {}
    public var suite: HashSuiteID { .sha256 }
    public func hash(_ bytes: [UInt8]) -> Hash {
        bytes.withUnsafeBytes { hash(raw: $0) }
    }
    public func hash(raw bytes: UnsafeRawBufferPointer) -> Hash {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Hash.byteCount) { output in
            civitas_sha256(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, output.baseAddress!)
            return Hash(raw: UnsafeRawBufferPointer(output))
        }
    }
}

/// SM3 (GB/T 32905) from the system OpenSSL 3: the national suite.
public struct SM3Hasher: CivitasCore.HashFunction {
    public init() {}
    public var suite: HashSuiteID { .sm3 }
    public func hash(_ bytes: [UInt8]) -> Hash {
        bytes.withUnsafeBytes { hash(raw: $0) }
    }
    public func hash(raw bytes: UnsafeRawBufferPointer) -> Hash {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Hash.byteCount) { output in
            let ok = civitas_sm3(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, output.baseAddress!)
            // OpenSSL without SM3 is a broken installation, not bad input.
            precondition(ok == 1, "OpenSSL SM3 failed: is libssl3 built without SM3?")
            return Hash(raw: UnsafeRawBufferPointer(output))
        }
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
    @inline(__always)
    public func hash(raw bytes: UnsafeRawBufferPointer) -> Hash {
        sha256 ? SHA256Hasher().hash(raw: bytes) : SM3Hasher().hash(raw: bytes)
    }
}
