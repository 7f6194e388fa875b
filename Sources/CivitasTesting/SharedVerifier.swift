import CivitasCore
import CivitasCrypto
import Synchronization

/// The real signature verifier, with its answers shared by every node of a simulation:
/// N simulated nodes receive the same signed message, and checking it N times on one
/// machine only slows the simulator down. Each distinct (signature, message, key) is
/// still verified for real, once.
public final class SharedVerifier: SignatureVerifier {
    private struct Entry: Hashable {
        var signature: Signature
        var message: [UInt8]
        var key: PublicKey
    }

    private let inner = SignatureVerifiers()
    private let answers = Mutex<[Entry: Bool]>([:])
    private let capacity: Int

    public init(capacity: Int = 200_000) { self.capacity = capacity }

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        let entry = Entry(signature: signature, message: message, key: key)
        if let known = answers.withLock({ $0[entry] }) { return known }
        let valid = inner.isValid(signature, of: message, by: key)
        answers.withLock { answers in
            if answers.count >= capacity { answers.removeAll(keepingCapacity: true) }
            answers[entry] = valid
        }
        return valid
    }
}
