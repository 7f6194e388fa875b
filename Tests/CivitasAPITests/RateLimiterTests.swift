import Testing

@testable import CivitasAPI

@Suite struct RateLimiterTests {
    let second: UInt64 = 1_000_000_000

    @Test func oneClientCannotTakeTheOthersBudget() {
        let limiter = RateLimiter(total: 100, perClient: 5, now: 0)
        for _ in 0..<5 { #expect(limiter.take(client: "10.0.0.1", now: 0) == .allowed) }
        #expect(limiter.take(client: "10.0.0.1", now: 0) == .clientLimited)
        #expect(limiter.take(client: "10.0.0.2", now: 0) == .allowed)
        // Half a second refills half the bucket.
        for _ in 0..<2 { #expect(limiter.take(client: "10.0.0.1", now: second / 2) == .allowed) }
        #expect(limiter.take(client: "10.0.0.1", now: second / 2) == .clientLimited)
    }

    @Test func theTotalBoundsAllClientsTogether() {
        let limiter = RateLimiter(total: 3, perClient: 10, now: 0)
        #expect(limiter.take(client: "a", now: 0) == .allowed)
        #expect(limiter.take(client: "b", now: 0) == .allowed)
        #expect(limiter.take(client: "c", now: 0) == .allowed)
        #expect(limiter.take(client: "d", now: 0) == .totalLimited)
        #expect(limiter.take(client: "d", now: second) == .allowed)
    }

    @Test func theClientTableStaysBounded() {
        let limiter = RateLimiter(total: 1_000_000, perClient: 2, clientsMax: 4, now: 0)
        for index in 0..<4 { #expect(limiter.take(client: "c\(index)", now: 0) == .allowed) }
        // The table is full of active clients: a newcomer is held to the total alone.
        #expect(limiter.take(client: "new", now: 0) == .allowed)
        #expect(limiter.trackedClients == 4)
        // A second later every tracked bucket is full again and may be forgotten.
        #expect(limiter.take(client: "new", now: 2 * second) == .allowed)
        #expect(limiter.trackedClients == 1)
        #expect(limiter.take(client: "new", now: 2 * second) == .allowed)
        #expect(limiter.take(client: "new", now: 2 * second) == .clientLimited)
    }
}
