@testable import CivitasStorage
import Synchronization
import Testing

@Suite struct ReadPoolTests {
    /// Every index runs exactly once, whatever the count against the threads.
    @Test(arguments: [0, 1, 2, 17, 5_000])
    func everyIndexRunsOnce(count: Int) throws {
        let pool = ReadPool(threads: 4, name: "civitas-read-test")
        defer { pool.stop() }
        let runs = Mutex([Int](repeating: 0, count: count))
        try pool.forEach(count) { index throws(StorageError) in runs.withLock { $0[index] += 1 } }
        #expect(runs.withLock { $0 }.allSatisfy { $0 == 1 })
        // The pool serves one round after another.
        let again = Atomic<Int>(0)
        try pool.forEach(count) { _ throws(StorageError) in again.add(1, ordering: .relaxed) }
        #expect(again.load(ordering: .relaxed) == count)
    }

    /// The first error comes back to the caller once the helpers are done, and the pool
    /// serves the next round.
    @Test func anErrorIsRethrownAndThePoolGoesOn() throws {
        let pool = ReadPool(threads: 4, name: "civitas-read-test")
        defer { pool.stop() }
        #expect(throws: StorageError(.readFailed, "index 10")) {
            try pool.forEach(1_000) { index throws(StorageError) in
                if index == 10 { throw StorageError(.readFailed, "index 10") }
            }
        }
        let ran = Atomic<Int>(0)
        try pool.forEach(1_000) { _ throws(StorageError) in ran.add(1, ordering: .relaxed) }
        #expect(ran.load(ordering: .relaxed) == 1_000)
    }
}
