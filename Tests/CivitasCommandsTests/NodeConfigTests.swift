import CivitasAPI
import CivitasNode
import Foundation
import Testing

@testable import CivitasCommands

@Suite struct NodeConfigTests {
    func decode(_ json: String) throws(NodeError) -> NodeConfig {
        try NodeConfig.decode(Data(json.utf8), path: "node.json")
    }

    @Test func aPartialFileKeepsTheDefaultsItDoesNotName() throws {
        let config = try decode(#"{"apiPort": 8800, "apiLimits": {"requestsPerSecondPerClient": 10}, "limits": {"mempool": {"bytesMax": 1024}}}"#)
        #expect(config.apiPort == 8800)
        #expect(config.apiLimits.requestsPerSecondPerClient == 10)
        #expect(config.apiLimits.requestsPerSecondMax == APILimits().requestsPerSecondMax)
        #expect(config.limits.mempool.bytesMax == 1024)
        #expect(config.limits.mempool.transactionsMax == MempoolLimits().transactionsMax)
        #expect(config.apiHost == "127.0.0.1")
        #expect(config.limits.stateCacheMebibytes == 512)
        #expect(try decode(#"{"limits": {"stateCacheMebibytes": 2048}}"#).limits.stateCacheMebibytes == 2048)
        #expect(config.limits.stateHeightsKept == 0)
        let pruning = try decode(#"{"limits": {"stateHeightsKept": 1000}}"#)
        #expect(pruning.limits.stateHeightsKept == 1000)
        try pruning.validate(path: "node.json")
    }

    @Test func theValidatorKeyIsPresentOnlyWhenNamed() throws {
        #expect(try decode("{}").validatorKey == nil)
        #expect(try decode(#"{"validatorKey": null}"#).validatorKey == nil)
        #expect(try decode(#"{"validatorKey": "keys/v.json"}"#).validatorKey == "keys/v.json")
    }

    @Test func aWrittenConfigReadsBackUnchanged() throws {
        let original = NodeConfig(apiPort: 0, logLevel: "debug", apiLimits: APILimits(batchTransactionsMax: 7))
        let encoded = try JSONEncoder().encode(original)
        #expect(try NodeConfig.decode(encoded, path: "node.json") == original)
    }

    @Test(arguments: [
        (#"{"apiPrt": 1}"#, "unknown field apiPrt"),
        (#"{"apiLimits": {"requestsPerSecnd": 1}}"#, "unknown field apiLimits.requestsPerSecnd"),
        (#"{"apiPort": "x"}"#, "apiPort"),
        (#"[1, 2]"#, "expected a JSON object"),
        (#"{"#, "node.json"),
    ])
    func badFilesAreRefusedNamingTheField(json: String, expected: String) {
        do {
            _ = try decode(json)
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == .config)
            #expect(error.message.contains(expected), "\(error.message)")
            #expect(error.message.hasPrefix("node.json: "))
        }
    }

    @Test func badValuesAreRefusedByValidation() throws {
        let cases: [(String, String)] = [
            (#"{"apiPort": 70000}"#, "apiPort"),
            (#"{"logLevel": "loud"}"#, "logLevel"),
            (#"{"apiLimits": {"requestsPerSecondPerClient": 0}}"#, "apiLimits"),
            (#"{"limits": {"mempool": {"transactionsMax": 0}}}"#, "limits.mempool"),
            (#"{"limits": {"stateCacheMebibytes": 0}}"#, "limits.stateCacheMebibytes"),
            (#"{"limits": {"stateCacheMebibytes": 2000000}}"#, "limits.stateCacheMebibytes"),
            (#"{"limits": {"stateHeightsKept": 5}}"#, "limits.stateHeightsKept must be 0 (keep every state) or at least 16"),
            (#"{"limits": {"stateHeightsKept": -1}}"#, "limits.stateHeightsKept must be 0 (keep every state) or at least 16, got -1"),
        ]
        for (json, expected) in cases {
            let config = try decode(json)
            #expect(throws: NodeError.self) { try config.validate(path: "node.json") }
            do { try config.validate(path: "node.json") } catch let error as NodeError {
                #expect(error.message.contains(expected), "\(error.message)")
            }
        }
    }
}
