import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Token buckets, one per client address and one over all requests: beyond their rate
/// (with one second of burst) the node answers 429 instead of queueing work it cannot
/// finish.
struct RateLimitMiddleware<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let limiter: RateLimiter

    init(total: Int, perClient: Int) { limiter = RateLimiter(total: Double(total), perClient: Double(perClient)) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        switch limiter.take(client: client, now: DispatchTime.now().uptimeNanoseconds) {
        case .allowed:
            return try await next(request, context)
        case .clientLimited:
            throw APIError(
                .tooManyRequests, "api.rate_limited",
                "request rate from \(client) above \(Int(limiter.perClient))/s; retry shortly")
        case .totalLimited:
            throw APIError(.tooManyRequests, "api.rate_limited", "request rate above \(Int(limiter.total))/s; retry shortly")
        }
    }
}

/// The buckets behind `RateLimitMiddleware`, with time passed in so tests can drive it.
///
/// The client table is bounded: a client idle for a whole second has a full bucket, so
/// forgetting it loses nothing; if the table is still full of active clients, new
/// clients are held to the total rate alone rather than growing memory without bound.
final class RateLimiter: Sendable {
    enum Outcome: Equatable { case allowed, clientLimited, totalLimited }

    struct Bucket {
        var tokens: Double
        var last: UInt64

        mutating func take(rate: Double, now: UInt64) -> Bool {
            let elapsed = Double(now &- last) / 1e9
            tokens = min(rate, tokens + max(elapsed, 0) * rate)
            last = now
            guard tokens >= 1 else { return false }
            tokens -= 1
            return true
        }
    }

    let total: Double
    let perClient: Double
    let clientsMax: Int
    private let state: Mutex<(total: Bucket, clients: [String: Bucket])>

    init(total: Double, perClient: Double, clientsMax: Int = 4_096, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        self.total = total
        self.perClient = perClient
        self.clientsMax = clientsMax
        state = Mutex((Bucket(tokens: total, last: now), [:]))
    }

    func take(client: String, now: UInt64) -> Outcome {
        state.withLock { state in
            if state.clients[client] == nil && state.clients.count >= clientsMax {
                state.clients = state.clients.filter { now &- $0.value.last < 1_000_000_000 }
            }
            if state.clients[client] != nil || state.clients.count < clientsMax {
                var bucket = state.clients[client] ?? Bucket(tokens: perClient, last: now)
                let allowed = bucket.take(rate: perClient, now: now)
                state.clients[client] = bucket
                guard allowed else { return .clientLimited }
            }
            return state.total.take(rate: total, now: now) ? .allowed : .totalLimited
        }
    }

    var trackedClients: Int { state.withLock { $0.clients.count } }
}
