import CivitasState
import Foundation
import Logging
import Synchronization

/// Runs a node's `StatePruner` on a thread of its own, a page at a time, woken by each
/// commit: deleting a block's worth of replaced nodes costs about as many deletes as the
/// block wrote nodes, which the node's own thread, the one that executes, votes and
/// commits, should not wait for. The thread runs at a lower priority, like RocksDB's
/// flushes and compactions, for the same reason.
final class PrunerThread: Sendable {
    private let pruner: StatePruner
    private let wake = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    /// Broadcast after each round of pages, for `waitUntilCaughtUp`.
    private let roundEnded = NSCondition()
    private let logger: Logger

    init(pruner: StatePruner, logger: Logger) {
        self.pruner = pruner
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "civitas-state-prune"
        thread.start()
    }

    /// A block was committed: there may be heights to prune.
    func poke() { wake.signal() }

    /// Ends the thread after the page it is on.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        wake.signal()
    }

    /// Whether the pruner had nothing left to do within `seconds`: a bounded wait for
    /// whoever needs the pruning done (tests, a shutdown that wants it finished).
    func waitUntilCaughtUp(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        roundEnded.lock()
        defer { roundEnded.unlock() }
        while pruner.heightsBehind > 0 {
            wake.signal()
            if !roundEnded.wait(until: deadline) { return pruner.heightsBehind == 0 }
        }
        return true
    }

    private func run() {
        // On Linux a nice value belongs to a thread: `who` 0 is this thread alone.
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        while !stopping.load(ordering: .relaxed) {
            // A poke lost to a race is made up within a second.
            _ = wake.wait(timeout: .now() + 1)
            do {
                // Each page deletes at least one entry, and entries are only added by commits.
                while !stopping.load(ordering: .relaxed), try pruner.prune() > 0 {}
                roundEnded.lock()
                roundEnded.broadcast()
                roundEnded.unlock()
            } catch {
                guard !stopping.load(ordering: .relaxed) else { return }
                logger.warning("pruning old state stopped for a second: \(error)")
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }
}
