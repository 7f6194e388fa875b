import CivitasStorage
import CivitasTesting
import Testing

/// The store the node simulation crashes: it must lose exactly what a disk would.
@Suite struct CrashableStoreTests {
    /// A simulated crash keeps what was synced or written durably, nothing after it.
    @Test func aCrashableStoreLosesOnlyUnsyncedWrites() throws {
        let store = CrashableStore()
        var first = WriteBatch()
        first.put([1], [1])
        try store.write(first, durable: false)
        var second = WriteBatch()
        second.put([2], [2])
        try store.write(second, durable: true)
        var third = WriteBatch()
        third.put([3], [3])
        try store.write(third, durable: false)
        #expect(!store.isSynced([3]) && store.isSynced([1]))
        let restarted = try store.afterCrash()
        #expect(try restarted.get([1]) == [1] && restarted.get([2]) == [2] && restarted.get([3]) == nil)
        try store.sync()
        #expect(try store.afterCrash().get([3]) == [3])
    }
}
