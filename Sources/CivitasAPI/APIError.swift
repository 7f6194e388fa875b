import CivitasCore
import CivitasCrypto
import CivitasNode
import Foundation
import HTTPTypes
import Hummingbird

/// Every error the API returns: an HTTP status, a stable machine code and a message,
/// as `{"error": {"code": …, "message": …}}`. Domain errors are mapped here, once.
public struct APIError: HTTPResponseError {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ErrorBody(error: .init(code: code, message: message))
        var response = try JSONResponse.make(body, status: status)
        if status == .tooManyRequests || status == .serviceUnavailable {
            response.headers[.retryAfter] = "1"
        }
        return response
    }

    struct ErrorBody: Codable {
        struct Detail: Codable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    static func from(_ error: TransactionError) -> APIError {
        let status: HTTPResponse.Status =
            switch error.code {
            case .mempoolFull, .senderQueueFull: .serviceUnavailable
            case .oversized: .contentTooLarge
            case .duplicate, .nonceTooLow: .conflict
            default: .badRequest
            }
        return APIError(status, error.code.rawValue, error.message)
    }

    static func from(_ error: NodeError) -> APIError {
        let status: HTTPResponse.Status =
            switch error.code {
            case .notFound: .notFound
            case .heightNotCommitted, .noCertifiedBlock: .notFound
            case .statePruned: .gone
            case .tooManyWaiters, .tooManySubscribers, .stopping: .serviceUnavailable
            default: .internalServerError
            }
        return APIError(status, error.code.rawValue, error.message)
    }

    static func notFound(_ what: String) -> APIError { APIError(.notFound, "api.not_found", what) }
    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, "api.bad_request", message) }
}

enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Maps errors that are not `APIError` (Hummingbird's own, for oversized bodies or
/// unknown routes) into the same JSON shape, so clients parse one format.
struct ErrorShapeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            let code: String =
                switch error.status {
                case .contentTooLarge: "api.request_too_large"
                case .notFound: "api.not_found"
                case .methodNotAllowed: "api.method_not_allowed"
                default: "api.http_\(error.status.code)"
                }
            throw APIError(error.status, code, error.body ?? error.status.reasonPhrase)
        } catch {
            context.logger.error("unhandled API error: \(error)")
            throw APIError(.internalServerError, "api.internal", "internal error")
        }
    }
}
