import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasNode
import CivitasVM
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Synchronization

public struct APILimits: Sendable, Codable, Equatable {
    public var requestBytesMax: Int
    public var batchBytesMax: Int
    public var batchTransactionsMax: Int
    /// Requests per second the node serves, all clients together, before answering 429.
    public var requestsPerSecondMax: Int
    /// Requests per second one client address may make before answering 429, so one
    /// busy client cannot take the whole budget from the others.
    public var requestsPerSecondPerClient: Int
    public var waitMillisecondsMax: Int

    public init(
        requestBytesMax: Int = 320 * 1024, batchBytesMax: Int = 16 << 20, batchTransactionsMax: Int = 5_000,
        requestsPerSecondMax: Int = 50_000, requestsPerSecondPerClient: Int = 20_000, waitMillisecondsMax: Int = 30_000
    ) {
        self.requestBytesMax = requestBytesMax
        self.batchBytesMax = batchBytesMax
        self.batchTransactionsMax = batchTransactionsMax
        self.requestsPerSecondMax = requestsPerSecondMax
        self.requestsPerSecondPerClient = requestsPerSecondPerClient
        self.waitMillisecondsMax = waitMillisecondsMax
    }
}

/// The request context of the API: Hummingbird's core context plus the client's
/// address, which the rate limiter keys on.
public struct APIRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// One operation of the API. `path` is written as in `docs/openapi.json`
/// (`/v1/blocks/{height}`); a test checks the two agree in both directions.
public struct APIRoute: Sendable {
    public typealias Handler = @Sendable (Request, APIRequestContext) async throws -> Response

    public let method: HTTPRequest.Method
    public let path: String
    let handler: Handler

    init(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
        self.method = method
        self.path = path
        self.handler = handler
    }

    /// Hummingbird's spelling of the path: `{name}` becomes `:name`.
    var routerPath: String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? ":" + part.dropFirst().dropLast() : String(part)
        }.joined(separator: "/")
    }
}

/// The node's HTTP API, versioned under `/v1`.
public struct API: Sendable {
    let node: Node
    let limits: APILimits
    let metrics: PrometheusCollectorRegistry?

    public init(node: Node, limits: APILimits = .init(), metrics: PrometheusCollectorRegistry? = nil) {
        self.node = node
        self.limits = limits
        self.metrics = metrics
    }

    public func router() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(
            middleware: RateLimitMiddleware(total: limits.requestsPerSecondMax, perClient: limits.requestsPerSecondPerClient))
        router.add(middleware: ErrorShapeMiddleware())
        for route in routes {
            router.on(RouterPath(route.routerPath), method: route.method, use: route.handler)
        }
        return router
    }

    public var routes: [APIRoute] {
        [
            APIRoute(.post, "/v1/transactions") { request, _ in try await submit(request) },
            APIRoute(.post, "/v1/transactions/batch") { request, _ in try await submitBatch(request) },
            APIRoute(.get, "/v1/transactions/{id}") { _, context in
                try await transaction(context.parameters.require("id"))
            },
            APIRoute(.get, "/v1/blocks/latest") { _, _ in try await block(await node.latest) },
            APIRoute(.get, "/v1/blocks/{height}") { _, context in
                let text = try context.parameters.require("height")
                guard let height = UInt64(text) else { throw APIError.badRequest("height must be an unsigned integer") }
                guard let committed = try await nodeCall({ try await node.block(at: height) }) else {
                    throw APIError.notFound("no block at height \(height)")
                }
                return try await block(committed)
            },
            APIRoute(.get, "/v1/blocks/hash/{hash}") { _, context in
                let hash = try parseHash(context.parameters.require("hash"))
                guard let committed = try await nodeCall({ try await node.block(hash: hash) }) else {
                    throw APIError.notFound("no block \(hash)")
                }
                return try await block(committed)
            },
            APIRoute(.get, "/v1/state/{key}") { request, context in
                guard let key = [UInt8](hex: try context.parameters.require("key")) else {
                    throw APIError.badRequest("state key must be hex")
                }
                return try await value(key, request: request)
            },
            APIRoute(.get, "/v1/kv/{owner}/{key}") { request, context in
                let owner = Address(try parseHash(context.parameters.require("owner")))
                let key = try KeyText.decode(context.parameters.require("key"))
                return try await value(StateKeys.kv(owner: owner, key: key), request: request)
            },
            APIRoute(.get, "/v1/accounts/{address}") { _, context in
                try await account(Address(try parseHash(context.parameters.require("address"))))
            },
            APIRoute(.get, "/v1/contracts/{address}") { _, context in try await contract(context) },
            APIRoute(.post, "/v1/contracts/{address}/query") { request, context in try await queryContract(request, context) },
            APIRoute(.get, "/v1/contracts/{address}/storage/{key}") { request, context in try await contractStorage(request, context) },
            APIRoute(.get, "/v1/status") { _, _ in try JSONResponse.make(StatusView(await node.status())) },
            APIRoute(.get, "/v1/chain") { _, _ in try JSONResponse.make(node.genesis) },
            APIRoute(.get, "/v1/events") { _, _ in try await events() },
            APIRoute(.get, "/metrics") { _, _ in
                var buffer: [UInt8] = []
                metrics?.emit(into: &buffer)
                return Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
            },
            APIRoute(.get, "/health") { _, _ in try JSONResponse.make(["status": "ok"]) },
        ]
    }

    // MARK: Handlers

    func submit(_ request: Request) async throws -> Response {
        let bytes = try await body(request, max: limits.requestBytesMax)
        let verified = try decodeAndVerify(bytes)
        try await admit(verified)
        let query = request.uri.queryParameters
        guard query.get("wait").map({ $0 == "true" || $0 == "1" }) == true else {
            return try JSONResponse.make(SubmitResult(id: verified.id.hex, status: "pending", receipt: nil), status: .accepted)
        }
        let timeout = min(query.get("timeout", as: Int.self) ?? 10_000, limits.waitMillisecondsMax)
        let outcome = try await nodeCall { try await node.waitForCommit(verified.id, timeout: .milliseconds(max(timeout, 1))) }
        guard let outcome else {
            return try JSONResponse.make(SubmitResult(id: verified.id.hex, status: "timeout", receipt: nil), status: .accepted)
        }
        return try JSONResponse.make(SubmitResult(id: verified.id.hex, status: "committed", receipt: ReceiptView(outcome)))
    }

    /// Body: a JSON object `{"transactions": ["hex", …]}`. Signatures are verified in
    /// parallel across cores; each transaction is admitted or refused on its own.
    func submitBatch(_ request: Request) async throws -> Response {
        let bytes = try await body(request, max: limits.batchBytesMax)
        struct Batch: Decodable { var transactions: [String] }
        let batch: Batch
        do { batch = try JSONDecoder().decode(Batch.self, from: Data(bytes)) } catch {
            throw APIError.badRequest("expected {\"transactions\": [hex, …]}: \(JSONErrorText.describe(error))")
        }
        guard batch.transactions.count <= limits.batchTransactionsMax else {
            throw APIError(.contentTooLarge, "api.batch_too_large", "at most \(limits.batchTransactionsMax) transactions per batch")
        }
        let verified = await ParallelVerifier.verify(batch.transactions, hasher: node.hasher, verifier: node.verifier) {
            text throws(TransactionError) in
            guard let raw = [UInt8](hex: text) else { throw TransactionError(.malformed, "transaction is not hex") }
            return (try Self.decode(raw), raw.count)
        }
        let admitted = await node.submit(verified.compactMap { try? $0.get() })
        var results: [BatchResult.Item] = []
        results.reserveCapacity(verified.count)
        var accepted = 0
        var next = 0
        for outcome in verified {
            switch outcome {
            case .success(let transaction):
                if let error = admitted[next] {
                    results.append(.init(id: transaction.id.hex, status: "rejected", errorCode: error.code.rawValue, errorMessage: error.message))
                } else {
                    accepted += 1
                    results.append(.init(id: transaction.id.hex, status: "pending"))
                }
                next += 1
            case .failure(let error):
                results.append(.init(id: nil, status: "rejected", errorCode: error.code.rawValue, errorMessage: error.message))
            }
        }
        return try JSONResponse.make(BatchResult(accepted: accepted, rejected: results.count - accepted, results: results))
    }

    func transaction(_ text: String) async throws -> Response {
        let id = try parseHash(text)
        if let outcome = try await nodeCall({ try await node.transaction(id) }) {
            return try JSONResponse.make(
                TransactionView(id: id, transaction: outcome.transaction, receipt: ReceiptView(outcome), status: "committed"))
        }
        if await node.isPending(id) {
            throw APIError(.notFound, "tx.pending", "transaction \(id) is pending, not yet committed")
        }
        throw APIError.notFound("no transaction \(id)")
    }

    func block(_ committed: CommittedBlock) async throws -> Response {
        let hasher = node.hasher
        let ids = committed.block.transactions.map { $0.body.id(using: hasher) }
        return try JSONResponse.make(BlockView(committed, transactionIds: ids))
    }

    func value(_ key: [UInt8], request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let wantProof = query.get("proof").map { $0 == "true" || $0 == "1" } ?? false
        let height = try query.get("height").map { text in
            guard let height = UInt64(text) else { throw APIError.badRequest("height must be an unsigned integer") }
            return height
        }
        if !wantProof && height == nil {
            let current = await node.latest.block.header.height
            let value = await node.value(key)
            return try JSONResponse.make(
                ValueView(key: key.hexString, exists: value != nil, value: value?.hexString, height: current, proof: nil))
        }
        let bundle = try await nodeCall { try await node.prove(key, height: height) }
        let document = ProofDocument(
            header: bundle.header, evidence: bundle.evidence, proof: bundle.proof, blockHash: bundle.header.hash(using: node.hasher),
            epochs: bundle.epochs)
        return try JSONResponse.make(
            ValueView(
                key: key.hexString, exists: bundle.proof.value != nil, value: bundle.proof.value?.hexString,
                height: bundle.header.height, proof: wantProof ? document : nil))
    }

    func account(_ address: Address) async throws -> Response {
        let organisation = await node.value(StateKeys.organisation(address)).flatMap { String(validating: $0, as: UTF8.self) }
        let nonce = (try? StateKeys.decodeU64(await node.value(StateKeys.nonce(address)))) ?? 0
        let balance = (try? StateKeys.decodeU64(await node.value(StateKeys.balance(address)))) ?? 0
        return try JSONResponse.make(AccountView(address: address.description, organisation: organisation, nonce: nonce, balance: balance))
    }

    /// Server-sent events: one `block` event per committed block, with its events.
    func events() async throws -> Response {
        let stream = try await nodeCall { try await node.subscribe() }
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: ": civitas event stream\n\n"))
            for await event in stream {
                let json = ChainEventView(event).json
                var buffer = ByteBuffer(string: "event: block\nid: \(event.height)\ndata: ")
                buffer.reserveCapacity(buffer.readableBytes + json.count + 2)
                buffer.writeBytes(json)
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    // MARK: Helpers

    func body(_ request: Request, max: Int) async throws -> [UInt8] {
        do {
            let buffer = try await request.body.collect(upTo: max)
            return Array(buffer.readableBytesView)
        } catch {
            throw APIError(.contentTooLarge, "api.request_too_large", "request body exceeds \(max) bytes")
        }
    }

    /// Accepts the raw canonical bytes (`application/octet-stream`) or the same bytes
    /// as a hex string (`text/plain`, handy with curl).
    func decodeAndVerify(_ bytes: [UInt8]) throws -> VerifiedTransaction {
        var raw = bytes
        if let text = String(validating: bytes, as: UTF8.self),
            let decoded = [UInt8](hex: text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            raw = decoded
        }
        do { return try Self.decodeAndVerify(raw, hasher: node.hasher, verifier: node.verifier) } catch {
            throw APIError.from(error)
        }
    }

    static func decodeAndVerify(
        _ raw: [UInt8], hasher: ChainHasher, verifier: SignatureVerifiers
    ) throws(TransactionError) -> VerifiedTransaction {
        try VerifiedTransaction.verify(decode(raw), hasher: hasher, verifier: verifier, encodedSize: raw.count)
    }

    static func decode(_ raw: [UInt8]) throws(TransactionError) -> SignedTransaction {
        do { return try SignedTransaction(wire: raw) } catch { throw TransactionError(decoding: error) }
    }

    func admit(_ transaction: VerifiedTransaction) async throws {
        do { try await node.submit(transaction) } catch { throw APIError.from(error) }
    }

    func nodeCall<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as NodeError { throw APIError.from(error) }
    }

    func parseHash(_ text: String) throws -> Hash {
        guard let hash = Hash(hex: text) else { throw APIError.badRequest("expected 64 hex digits, got \(text.prefix(80))") }
        return hash
    }
}

/// How a kv key travels in a URL path: UTF-8 text, or `0x` + hex for arbitrary bytes.
public enum KeyText {
    public static func decode(_ text: String) throws -> [UInt8] {
        if text.hasPrefix("0x") {
            guard let raw = [UInt8](hex: text) else { throw APIError.badRequest("key after 0x must be hex") }
            return raw
        }
        return Array((text.removingPercentEncoding ?? text).utf8)
    }

    public static func encode(_ key: [UInt8]) -> String {
        if let text = String(validating: key, as: UTF8.self), !text.hasPrefix("0x"),
            text.allSatisfy({ $0.isLetter || $0.isNumber || "-_.~".contains($0) })
        {
            return text
        }
        return "0x" + key.hexString
    }
}
