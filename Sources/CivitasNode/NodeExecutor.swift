import Foundation

/// The node actor's own thread. On Swift's shared pool (one thread per core) the actor
/// waited behind HTTP handlers and event encoding for a free thread while consensus had
/// work; on a thread of its own it runs whenever the kernel gives it a core.
final class NodeExecutor: SerialExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var stopped = false
    private var runner: pthread_t?

    init(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.withLock {
            jobs.append(job)
            condition.broadcast()
        }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// Lets the thread end once its queue is empty; the executor must outlive its actor.
    func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
    }

    /// Whether the thread ended within `timeout` seconds of `stop()`.
    func waitUntilStopped(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        return condition.withLock {
            while !stopped {
                if !condition.wait(until: deadline) { return stopped }
            }
            return true
        }
    }

    /// Whether the caller is on this executor's thread.
    var isCurrentThread: Bool {
        let runner = condition.withLock { self.runner }
        return runner.map { pthread_equal($0, pthread_self()) != 0 } ?? false
    }

    private func run() {
        condition.withLock { runner = pthread_self() }
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty, !stopping { condition.wait() }
            if jobs.isEmpty, stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
