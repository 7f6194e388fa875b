import CivitasCore
import Dispatch
import Foundation

/// Verifies many transactions at once on every core (signature checks dominate the
/// cost of admitting them), keeping results in input order.
///
/// The work runs on Dispatch's threads, not on the caller's: a caller on Swift's
/// cooperative pool (an HTTP handler, the gossip path) would otherwise hold one of its
/// few threads, one per core, for the whole batch, and the node's actor, which runs on
/// that pool, would wait for a free thread behind signature checks.
public enum ParallelVerifier {
    private static let queue = DispatchQueue(label: "civitas.verify", qos: .userInitiated, attributes: .concurrent)
    /// Items per batch check: large enough that Ed25519's shared doublings are a small
    /// part of each signature's cost, small enough to spread a request over the cores.
    static let chunkMax = 64

    /// Decodes each input (a decoding error is that input's result) and verifies the
    /// transactions in chunks, one chunk per thread at a time, keeping input order.
    public static func verify<Input: Sendable>(
        _ inputs: [Input], hasher: ChainHasher, verifier: some SignatureVerifier,
        decode: @escaping @Sendable (Input) throws(TransactionError) -> (transaction: SignedTransaction, encodedSize: Int?)
    ) async -> [Result<VerifiedTransaction, TransactionError>] {
        guard !inputs.isEmpty else { return [] }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let chunks = max(min(cores, inputs.count), (inputs.count + chunkMax - 1) / chunkMax)
        return await withCheckedContinuation { continuation in
            queue.async {
                let results = UnsafeResults(count: inputs.count)
                DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                    let range = (inputs.count * chunk / chunks)..<(inputs.count * (chunk + 1) / chunks)
                    var decoded: [(index: Int, transaction: SignedTransaction, encodedSize: Int?)] = []
                    decoded.reserveCapacity(range.count)
                    for index in range {
                        do throws(TransactionError) {
                            let (transaction, size) = try decode(inputs[index])
                            decoded.append((index, transaction, size))
                        } catch {
                            results.store(.failure(error), at: index)
                        }
                    }
                    let verified = VerifiedTransaction.verifyAll(
                        decoded.map(\.transaction), encodedSizes: decoded.map(\.encodedSize), hasher: hasher, verifier: verifier)
                    for (entry, result) in zip(decoded, verified) { results.store(result, at: entry.index) }
                }
                continuation.resume(returning: results.values)
            }
        }
    }
}

/// Each index is written by exactly one chunk of `concurrentPerform`, and read only
/// after it returns, so no two threads touch one slot.
private final class UnsafeResults: @unchecked Sendable {
    private var slots: [Result<VerifiedTransaction, TransactionError>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func store(_ value: Result<VerifiedTransaction, TransactionError>, at index: Int) {
        slots.withUnsafeMutableBufferPointer { $0[index] = value }
    }
    var values: [Result<VerifiedTransaction, TransactionError>] { slots.map { $0! } }
}
