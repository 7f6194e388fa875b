import Foundation
import Synchronization

/// Threads that read for a caller who waits on them. A store on a disk that serves many
/// reads at once (any SSD, any cloud volume) answers a batch of point reads in about the
/// time of one when they are in flight together; a thread issuing them in turn waits out
/// each read's latency. The threads spend their time blocked in the kernel, not on a core.
final class ReadPool: Sendable {
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [@Sendable () -> Void] = []
        var stopping = false
    }

    private let queue = Queue()
    let threads: Int

    init(threads: Int, name: String) {
        precondition(threads > 0)
        self.threads = threads
        for _ in 0..<threads {
            let queue = queue
            let thread = Thread {
                while true {
                    queue.condition.lock()
                    while queue.jobs.isEmpty, !queue.stopping { queue.condition.wait() }
                    if queue.jobs.isEmpty {
                        queue.condition.unlock()
                        return
                    }
                    let job = queue.jobs.removeLast()
                    queue.condition.unlock()
                    job()
                }
            }
            thread.name = name
            thread.start()
        }
    }

    /// What one `forEach` shares with the threads helping it.
    private final class Round: Sendable {
        let next = Atomic<Int>(0)
        let failure = Mutex<StorageError?>(nil)
    }

    /// Runs `body(index)` for every index below `count`, on the pool's threads and the
    /// caller's, and returns once all have run; stops handing out indices after the first
    /// error and rethrows it.
    func forEach(_ count: Int, _ body: @escaping @Sendable (Int) throws(StorageError) -> Void) throws(StorageError) {
        guard count > 0 else { return }
        let round = Round()
        let helpers = min(threads, count - 1)
        let done = DispatchGroup()
        let work: @Sendable () -> Void = {
            while true {
                let index = round.next.add(1, ordering: .relaxed).oldValue
                guard index < count else { return }
                do throws(StorageError) { try body(index) } catch {
                    round.failure.withLock { if $0 == nil { $0 = error } }
                    round.next.store(count, ordering: .relaxed)
                    return
                }
            }
        }
        if helpers > 0 {
            queue.condition.lock()
            for _ in 0..<helpers {
                done.enter()
                queue.jobs.append {
                    work()
                    done.leave()
                }
            }
            queue.condition.broadcast()
            queue.condition.unlock()
        }
        work()
        done.wait()
        if let error = round.failure.withLock({ $0 }) { throw error }
    }

    /// Lets the threads end once the queued jobs have run.
    func stop() {
        queue.condition.lock()
        queue.stopping = true
        queue.condition.broadcast()
        queue.condition.unlock()
    }
}
