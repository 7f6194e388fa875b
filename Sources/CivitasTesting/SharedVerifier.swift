import CivitasCore
import CivitasCrypto
import Synchronization

/// The real signature verifier, with its answers shared by every node of a simulation:
/// N simulated nodes receive the same signed message, and checking it N times on one
/// machine only slows the simulator down. Each distinct (signature, message, key) is
/// still verified for real, once.
public final class SharedVerifier: SignatureVerifier {
    private struct Entry: Hashable {
        var check: SignatureCheck
        /// Transactions and consensus messages follow different Ed25519 rules (ADR 0008).
        var transaction: Bool
    }

    private let inner = SignatureVerifiers()
    private let answers = Mutex<[Entry: Bool]>([:])
    private let capacity: Int

    public init(capacity: Int = 200_000) { self.capacity = capacity }

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        let entry = Entry(check: SignatureCheck(signature, of: message, by: key), transaction: false)
        if let known = answers.withLock({ $0[entry] }) { return known }
        let valid = inner.isValid(signature, of: message, by: key)
        remember([entry], [valid])
        return valid
    }

    public func areValidTransactionSignatures(_ checks: [SignatureCheck]) -> [Bool] {
        let entries = checks.map { Entry(check: $0, transaction: true) }
        var results = answers.withLock { answers in entries.map { answers[$0] } }
        let missing = results.indices.filter { results[$0] == nil }
        let fresh = inner.areValidTransactionSignatures(missing.map { checks[$0] })
        for (index, valid) in zip(missing, fresh) { results[index] = valid }
        remember(missing.map { entries[$0] }, fresh)
        return results.map { $0! }
    }

    private func remember(_ entries: [Entry], _ answers: [Bool]) {
        self.answers.withLock { known in
            if known.count + entries.count > capacity { known.removeAll(keepingCapacity: true) }
            for (entry, answer) in zip(entries, answers) { known[entry] = answer }
        }
    }
}
