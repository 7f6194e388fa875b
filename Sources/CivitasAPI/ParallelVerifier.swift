import CivitasCrypto
import Dispatch

/// Verifies many transactions at once on every core (signature checks dominate
/// admission cost), keeping results in input order.
enum ParallelVerifier {
    static func verify<Input: Sendable>(
        _ inputs: [Input], _ body: @Sendable (Input) throws(TransactionError) -> VerifiedTransaction
    ) -> [Result<VerifiedTransaction, TransactionError>] {
        let results = UnsafeResults(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { index in
            do throws(TransactionError) {
                results.store(.success(try body(inputs[index])), at: index)
            } catch {
                results.store(.failure(error), at: index)
            }
        }
        return results.values
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
