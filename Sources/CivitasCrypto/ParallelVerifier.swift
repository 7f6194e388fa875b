import Dispatch

/// Verifies many transactions at once on every core (signature checks dominate the
/// cost of admitting them), keeping results in input order.
///
/// The work runs on Dispatch's threads, not on the caller's: a caller on Swift's
/// cooperative pool (an HTTP handler, the gossip path) would otherwise hold one of its
/// few threads, one per core, for the whole batch, and the node's actor, which runs on
/// that pool, would wait for a free thread behind signature checks.
public enum ParallelVerifier {
    private static let queue = DispatchQueue(label: "civitas.verify", qos: .userInitiated, attributes: .concurrent)

    public static func verify<Input: Sendable>(
        _ inputs: [Input], _ body: @escaping @Sendable (Input) throws(TransactionError) -> VerifiedTransaction
    ) async -> [Result<VerifiedTransaction, TransactionError>] {
        guard !inputs.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            queue.async {
                let results = UnsafeResults(count: inputs.count)
                DispatchQueue.concurrentPerform(iterations: inputs.count) { index in
                    do throws(TransactionError) {
                        results.store(.success(try body(inputs[index])), at: index)
                    } catch {
                        results.store(.failure(error), at: index)
                    }
                }
                continuation.resume(returning: results.values)
            }
        }
    }
}

/// Each index is written by exactly one iteration of `concurrentPerform`, and read only
/// after it returns, so no two threads touch one slot.
private final class UnsafeResults: @unchecked Sendable {
    private var slots: [Result<VerifiedTransaction, TransactionError>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func store(_ value: Result<VerifiedTransaction, TransactionError>, at index: Int) {
        slots.withUnsafeMutableBufferPointer { $0[index] = value }
    }
    var values: [Result<VerifiedTransaction, TransactionError>] { slots.map { $0! } }
}
