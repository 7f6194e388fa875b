import CivitasClient
import CivitasCore
import CivitasModules
import CivitasNode
import CivitasStorage
import CivitasTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import WAT

@testable import CivitasAPI

/// Keeps `docs/openapi.json` true: every route the API serves is documented and every
/// documented route is served; every answer the API gives in the scenarios below has a
/// documented status and content type, and its JSON body matches the documented schema
/// exactly (no missing required field, no undocumented field).
@Suite struct OpenAPITests {
    static let documentURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json")

    let document: JSONValue
    let chain = TestChain()

    init() throws {
        document = try JSONValue.parse(Data(contentsOf: Self.documentURL))
    }

    var documentedOperations: Set<String> {
        var operations: Set<String> = []
        for (path, item) in document["paths"]?.object ?? [:] {
            for method in item.object?.keys ?? [:].keys { operations.insert("\(method.uppercased()) \(path)") }
        }
        return operations
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteIsServed() throws {
        let api = API(node: try chain.node())
        let served = Set(api.routes.map { "\($0.method.rawValue) \($0.path)" })
        #expect(served.subtracting(documentedOperations).isEmpty, "served but not in docs/openapi.json")
        #expect(documentedOperations.subtracting(served).isEmpty, "in docs/openapi.json but not served")
    }

    @Test func everySchemaReferenceResolvesAndUsesCheckedKeywords() throws {
        let validator = SchemaValidator(document: document)
        for (name, schema) in document["components"]?["schemas"]?.object ?? [:] {
            // Validating `null` walks the schema's top level; nested refs are walked below.
            let problems = validator.validate(.null, against: schema).filter { $0.contains("schema keyword") || $0.contains("unresolved") }
            #expect(problems.isEmpty, "\(name): \(problems)")
        }
        var references: [String] = []
        func collect(_ value: JSONValue) {
            switch value {
            case .object(let object):
                if let reference = object["$ref"]?.string { references.append(reference) }
                object.values.forEach(collect)
            case .array(let array): array.forEach(collect)
            default: break
            }
        }
        collect(document)
        #expect(!references.isEmpty)
        for reference in references { #expect(validator.resolve(reference) != nil, "unresolved \(reference)") }
    }

    /// A node on RocksDB adds its store's backlog to its status, as documented; the node of
    /// `answersMatchTheDocument`, in memory, has none to report.
    @Test func aNodeOnRocksDBReportsItsStoreInItsStatus() async throws {
        let checker = Checker(document: document)
        let path = NSTemporaryDirectory() + "civitas-openapi-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RocksDBStore(path: path)
        defer { store.close() }
        let api = API(node: try chain.liveNode(store: store), limits: APILimits())
        try await Application(router: api.router()).test(.router) { client in
            let status = try await checker.call(client, .get, "/v1/status", body: nil)
            #expect(status.status == .ok)
            #expect(status.json?["storage"]?["settled"] == .bool(true))
            #expect(status.json?["storage"]?["pendingCompactionBytes"] == .number(0))
        }
    }

    @Test func answersMatchTheDocument() async throws {
        let checker = Checker(document: document)
        let node = try chain.liveNode(limits: NodeLimits(subscribersMax: 1))
        let api = API(node: node, limits: APILimits(requestBytesMax: 4_096, batchBytesMax: 64 * 1024, batchTransactionsMax: 10))
        let owner = chain.address(chain.clients[0])

        // The single subscriber slot is ours: its events are checked against the
        // ChainEvent schema, and the HTTP stream must then answer 503.
        let events = try await node.subscribe()
        let production = Task { await node.run() }
        defer { production.cancel() }

        try await Application(router: api.router()).test(.router) { client in
            let check = { (method: HTTPRequest.Method, uri: String, body: [UInt8]?) async throws -> Checked in
                try await checker.call(client, method, uri, body: body)
            }
            let put = chain.transaction(Self.put("hello", "world"), nonce: 0).transaction
            let pending = try await check(.post, "/v1/transactions", Array(put.canonicalBytes.hexString.utf8))
            #expect(pending.status == .accepted)
            #expect(pending.json?["status"] == .string("pending"))

            let second = chain.transaction(Self.put("second", "2"), nonce: 1).transaction
            let committed = try await check(.post, "/v1/transactions?wait=true&timeout=10000", second.canonicalBytes)
            #expect(committed.status == .ok)
            #expect(committed.json?["status"] == .string("committed"))
            let id = try #require(committed.json?["id"]?.string)

            #expect(try await check(.post, "/v1/transactions", put.canonicalBytes).status == .conflict)
            #expect(try await check(.post, "/v1/transactions", Array("not a transaction".utf8)).status == .badRequest)
            #expect(try await check(.post, "/v1/transactions", [UInt8](repeating: 7, count: 5_000)).status == .contentTooLarge)

            let batch = [
                chain.transaction(Self.put("b1", "1"), nonce: 2).transaction.canonicalBytes.hexString,
                chain.transaction(Self.put("b2", "2"), nonce: 3).transaction.canonicalBytes.hexString,
                "00ff",
            ]
            let batchBody = try JSONEncoder().encode(["transactions": batch])
            let batchResult = try await check(.post, "/v1/transactions/batch", Array(batchBody))
            #expect(batchResult.json?["accepted"] == .number(2))
            #expect(batchResult.json?["rejected"] == .number(1))
            #expect(try await check(.post, "/v1/transactions/batch", Array("{".utf8)).status == .badRequest)
            let tooMany = try JSONEncoder().encode(["transactions": [String](repeating: "00", count: 11)])
            #expect(try await check(.post, "/v1/transactions/batch", Array(tooMany)).status == .contentTooLarge)

            #expect(try await check(.get, "/v1/transactions/\(id)", nil).status == .ok)
            #expect(try await check(.get, "/v1/transactions/\(Hash.zero.hex)", nil).status == .notFound)
            #expect(try await check(.get, "/v1/transactions/xyz", nil).status == .badRequest)

            let latest = try await check(.get, "/v1/blocks/latest", nil)
            let blockHash = try #require(latest.json?["hash"]?.string)
            #expect(try await check(.get, "/v1/blocks/1", nil).status == .ok)
            #expect(try await check(.get, "/v1/blocks/0", nil).status == .ok)
            #expect(try await check(.get, "/v1/blocks/999999", nil).status == .notFound)
            #expect(try await check(.get, "/v1/blocks/minus-one", nil).status == .badRequest)
            #expect(try await check(.get, "/v1/blocks/hash/\(blockHash)", nil).status == .ok)
            #expect(try await check(.get, "/v1/blocks/hash/\(Hash.zero.hex)", nil).status == .notFound)
            #expect(try await check(.get, "/v1/blocks/hash/12", nil).status == .badRequest)

            let stateKey = StateKeys.kv(owner: owner, key: Array("second".utf8)).hexString
            let proven = try await check(.get, "/v1/state/\(stateKey)?proof=true", nil)
            #expect(proven.json?["exists"] == .bool(true))
            #expect(proven.json?["proof"]?["proof"]?.string != nil)
            #expect(try await check(.get, "/v1/state/\(stateKey)", nil).status == .ok)
            #expect(try await check(.get, "/v1/state/nothex", nil).status == .badRequest)
            #expect(try await check(.get, "/v1/state/\(stateKey)?height=999999", nil).status == .notFound)
            #expect(try await check(.get, "/v1/kv/\(owner)/second?proof=true", nil).json?["value"] == .string("32"))
            let absent = try await check(.get, "/v1/kv/\(owner)/never-written?proof=true", nil)
            #expect(absent.json?["exists"] == .bool(false))
            #expect(absent.json?["proof"] != nil)
            #expect(try await check(.get, "/v1/kv/short/key", nil).status == .badRequest)
            #expect(try await check(.get, "/v1/kv/\(owner)/second?height=x", nil).status == .badRequest)

            let account = try await check(.get, "/v1/accounts/\(owner)", nil)
            #expect(account.json?["organisation"] == .string("org1"))
            #expect(try await check(.get, "/v1/accounts/\(Hash.zero.hex)", nil).json?["nonce"] == .number(0))
            #expect(try await check(.get, "/v1/accounts/0x12", nil).status == .badRequest)

            // A contract that stores its arguments under "k" (method p) and returns them (method g).
            let code = try wat2wasm(Self.storageContract)
            let deploy = Call(module: "contract", method: "deploy", arguments: ContractModule.deployArguments(code: code, policy: .owner, initArguments: nil))
            let deployed = try await check(.post, "/v1/transactions?wait=true&timeout=10000", chain.transaction(deploy, nonce: 4, gasLimit: 5_000_000).transaction.canonicalBytes)
            #expect(deployed.json?["receipt"]?["success"] == .bool(true), "\(String(describing: deployed.json))")
            let contract = ContractModule.address(deployer: owner, sequence: 0, hasher: chain.hasher)
            let store = Call(module: "contract", method: "call", arguments: ContractModule.callArguments(contract: contract, method: "p", arguments: ContractValue.encode([.string("hi")])))
            #expect(try await check(.post, "/v1/transactions?wait=true&timeout=10000", chain.transaction(store, nonce: 5).transaction.canonicalBytes).status == .ok)
            let shown = try await check(.get, "/v1/contracts/\(contract)", nil)
            #expect(shown.json?["version"] == .number(1))
            #expect(try await check(.get, "/v1/contracts/\(Hash.zero.hex)", nil).status == .notFound)
            #expect(try await check(.get, "/v1/contracts/nothex", nil).status == .badRequest)
            let queried = try await check(.post, "/v1/contracts/\(contract)/query", Array(#"{"method": "g", "args": []}"#.utf8))
            #expect(queried.json?["output"] == .array([.string("hi")]), "\(String(describing: queried.json))")
            let failing = try await check(.post, "/v1/contracts/\(contract)/query", Array(#"{"method": "x"}"#.utf8))
            #expect(failing.json?["errorCode"] == .string("contract.failed"))
            #expect(try await check(.post, "/v1/contracts/\(Hash.zero.hex)/query", Array(#"{"method": "g"}"#.utf8)).status == .notFound)
            #expect(try await check(.post, "/v1/contracts/\(contract)/query", Array("{".utf8)).status == .badRequest)
            #expect(try await check(.post, "/v1/contracts/\(contract)/query", [UInt8](repeating: 32, count: 5_000)).status == .contentTooLarge)
            let stored = try await check(.get, "/v1/contracts/\(contract)/storage/k?proof=true", nil)
            #expect(stored.json?["exists"] == .bool(true))
            #expect(try await check(.get, "/v1/contracts/xyz/storage/k", nil).status == .badRequest)

            #expect(try await check(.get, "/v1/status", nil).json?["chainId"] == .string("test-chain"))
            #expect(try await check(.get, "/v1/chain", nil).json?["chainId"] == .string("test-chain"))
            #expect(try await check(.get, "/v1/events", nil).status == .serviceUnavailable)
            #expect(try await check(.get, "/metrics", nil).status == .ok)
            #expect(try await check(.get, "/health", nil).status == .ok)
            #expect(try await check(.get, "/v1/nothing-here", nil).status == .notFound)
        }

        // The event our subscription received for the first block has the documented shape.
        var iterator = events.makeAsyncIterator()
        let first = try #require(await iterator.next())
        let encoded = try JSONEncoder().encode(ChainEventView(first))
        let problems = SchemaValidator(document: document).validate(
            try JSONValue.parse(encoded), against: .object(["$ref": .string("#/components/schemas/ChainEvent")]))
        #expect(problems.isEmpty, "\(problems)")

        // Overload: a node that is not producing blocks, with room for one transaction,
        // and an API that allows three requests per second per client.
        let idle = try chain.node(limits: NodeLimits(mempool: MempoolLimits(transactionsMax: 1)))
        let strict = API(node: idle, limits: APILimits(requestsPerSecondPerClient: 3))
        try await Application(router: strict.router()).test(.router) { client in
            let first = chain.transaction(Self.put("a", "1"), nonce: 0).transaction.canonicalBytes
            let second = chain.transaction(Self.put("a", "2"), client: 1, nonce: 0).transaction.canonicalBytes
            #expect(try await checker.call(client, .post, "/v1/transactions", body: first).status == .accepted)
            #expect(try await checker.call(client, .post, "/v1/transactions", body: second).status == .serviceUnavailable)
            var limited: Checked?
            for _ in 0..<20 {
                let answer = try await checker.call(client, .post, "/v1/transactions", body: second)
                if answer.status == .tooManyRequests {
                    limited = answer
                    break
                }
            }
            let answer = try #require(limited, "no 429 within 20 requests at 3/s")
            #expect(answer.json?["error"]?["code"] == .string("api.rate_limited"))
        }

        let missing = documentedOperations.subtracting(await checker.exercisedOperations)
        #expect(missing.isEmpty, "documented but not exercised: \(missing.sorted())")
        let submitStatuses = document["paths"]?["/v1/transactions"]?["post"]?["responses"]?.object?.keys ?? [:].keys
        let exercised = await checker.exercisedStatuses["POST /v1/transactions"] ?? []
        #expect(Set(submitStatuses).subtracting(exercised).isEmpty, "submit statuses not exercised")
    }

    static let storageContract = #"""
        (module
          (import "env" "storage_get" (func $get (param i32 i32 i32 i32) (result i32)))
          (import "env" "storage_put" (func $put (param i32 i32 i32 i32)))
          (import "env" "return_data" (func $ret (param i32 i32)))
          (memory (export "memory") 1)
          (global $heap (mut i32) (i32.const 4096))
          (data (i32.const 16) "k")
          (func (export "civitas_alloc") (param $n i32) (result i32)
            (local $p i32)
            (local.set $p (global.get $heap))
            (global.set $heap (i32.add (global.get $heap) (local.get $n)))
            (local.get $p))
          (func (export "civitas_call") (param $m i32) (param $ml i32) (param $a i32) (param $al i32) (result i32)
            (local $n i32)
            (if (i32.eq (i32.load8_u (local.get $m)) (i32.const 112))
              (then (call $put (i32.const 16) (i32.const 1) (local.get $a) (local.get $al)) (return (i32.const 0))))
            (if (i32.eq (i32.load8_u (local.get $m)) (i32.const 103))
              (then
                (local.set $n (call $get (i32.const 16) (i32.const 1) (i32.const 256) (i32.const 1024)))
                (call $ret (i32.const 256) (local.get $n))
                (return (i32.const 0))))
            (i32.const 1)))
        """#

    static func put(_ key: String, _ value: String) -> Call {
        Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array(key.utf8), value: Array(value.utf8)))
    }
}

struct Checked: Sendable {
    var status: HTTPResponse.Status
    var json: JSONValue?
}

/// Sends a request through the router and checks the answer against the document.
actor Checker {
    let document: JSONValue
    let validator: SchemaValidator
    var exercisedOperations: Set<String> = []
    var exercisedStatuses: [String: Set<String>] = [:]

    init(document: JSONValue) {
        self.document = document
        validator = SchemaValidator(document: document)
    }

    func call(
        _ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, body: [UInt8]?
    ) async throws -> Checked {
        let response = try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(bytes: $0) })
        let path = String(uri.prefix { $0 != "?" })
        let contentType = response.headers[.contentType].map { String($0.prefix { $0 != ";" }) }
        let json = contentType == "application/json" ? try JSONValue.parse(response.body.readableBytesView) : nil

        guard let template = Self.template(for: path, in: document) else {
            // Not a documented path: the answer must still be the documented error shape.
            let problems = validate(json, schema: "#/components/schemas/Error")
            #expect(problems.isEmpty, "\(method) \(uri): \(problems)")
            return Checked(status: response.status, json: json)
        }
        let operation = "\(method.rawValue) \(template)"
        exercisedOperations.insert(operation)
        exercisedStatuses[operation, default: []].insert(String(response.status.code))
        guard let documented = document["paths"]?[template]?[method.rawValue.lowercased()]?["responses"]?[String(response.status.code)]
        else {
            Issue.record("\(method) \(uri): status \(response.status.code) is not documented for \(operation)")
            return Checked(status: response.status, json: json)
        }
        let contents = documented["content"]?.object ?? [:]
        guard let contentType, let content = contents[contentType] else {
            Issue.record("\(method) \(uri): content type \(contentType ?? "none") not documented; documented: \(contents.keys.sorted())")
            return Checked(status: response.status, json: json)
        }
        if let json, let schema = content["schema"] {
            let problems = validator.validate(json, against: schema)
            #expect(problems.isEmpty, "\(method) \(uri) → \(response.status.code): \(problems)")
        }
        return Checked(status: response.status, json: json)
    }

    private func validate(_ json: JSONValue?, schema reference: String) -> [String] {
        guard let json else { return ["no JSON body"] }
        return validator.validate(json, against: .object(["$ref": .string(reference)]))
    }

    /// The documented path template a concrete path belongs to; literal segments win
    /// over parameters, so `/v1/blocks/latest` is not read as `/v1/blocks/{height}`.
    static func template(for path: String, in document: JSONValue) -> String? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var best: (template: String, literals: Int)?
        for template in document["paths"]?.object?.keys ?? [:].keys {
            let parts = template.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == segments.count else { continue }
            var literals = 0
            var matches = true
            for (part, segment) in zip(parts, segments) {
                if part.hasPrefix("{") { continue }
                guard part == segment else {
                    matches = false
                    break
                }
                literals += 1
            }
            if matches && literals > (best?.literals ?? -1) { best = (template, literals) }
        }
        return best?.template
    }
}
