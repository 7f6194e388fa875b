import Foundation
import Hummingbird
import Synchronization

/// A token bucket over all requests: beyond `perSecond` sustained (with one second of
/// burst) the node answers 429 instead of queueing work it cannot finish.
struct RateLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    private let bucket: Bucket

    init(perSecond: Int) { bucket = Bucket(perSecond: Double(perSecond)) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard bucket.take() else {
            throw APIError(.tooManyRequests, "api.rate_limited", "request rate above \(Int(bucket.perSecond))/s; retry shortly")
        }
        return try await next(request, context)
    }

    final class Bucket: Sendable {
        let perSecond: Double
        private let state: Mutex<(tokens: Double, last: UInt64)>

        init(perSecond: Double) {
            self.perSecond = perSecond
            state = Mutex((perSecond, DispatchTime.now().uptimeNanoseconds))
        }

        func take() -> Bool {
            let now = DispatchTime.now().uptimeNanoseconds
            return state.withLock { state in
                let elapsed = Double(now - state.last) / 1e9
                state.tokens = min(perSecond, state.tokens + elapsed * perSecond)
                state.last = now
                guard state.tokens >= 1 else { return false }
                state.tokens -= 1
                return true
            }
        }
    }
}
