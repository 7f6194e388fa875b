import Foundation
import Testing

@testable import CivitasNode

/// The node actor's own thread: every job runs there, one at a time, in order of
/// arrival, and the thread ends once stopped.
@Suite struct NodeExecutorTests {
    actor Counter {
        let executor = NodeExecutor(name: "civitas-test-executor")
        nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
        var value = 0
        var elsewhere = 0
        var inside = 0
        var overlapped = false

        func increment() {
            inside += 1
            if inside > 1 { overlapped = true }
            if !executor.isCurrentThread { elsewhere += 1 }
            value += 1
            inside -= 1
        }

        deinit { executor.stop() }
    }

    @Test func jobsRunOneAtATimeOnTheActorsThread() async {
        let counter = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { await counter.increment() } }
        }
        #expect(await counter.value == 200)
        #expect(await counter.overlapped == false)
        #expect(await counter.elsewhere == 0)
    }

    @Test func aStoppedExecutorEndsItsThreadAfterItsQueue() async {
        let executor = NodeExecutor(name: "civitas-stopping-executor")
        actor Probe {
            let executor: NodeExecutor
            init(_ executor: NodeExecutor) { self.executor = executor }
            nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
            func onItsThread() -> Bool { executor.isCurrentThread }
        }
        #expect(await Probe(executor).onItsThread())
        #expect(!executor.isCurrentThread)
        executor.stop()
        #expect(executor.waitUntilStopped(timeout: 5))
    }
}
