@testable import CivitasAPI
import Foundation
import Testing

@Suite struct EventJSONTests {
    /// The hand-written event JSON is byte for byte what JSONEncoder writes with sorted
    /// keys, for strings that need escaping too.
    @Test func eventJSONMatchesTheEncoder() throws {
        let source = """
            {"height": 7, "blockHash": "ab", "stateRoot": "cd", "timestampMilliseconds": 1700000000123, "proposer": 3, "transactionCount": 3, "transactions": [
              {"transactionId": "01", "success": true, "events": [
                {"module": "kv", "name": "put", "attributes": {"key": "a/b \\"q\\" \\\\ é", "z": "line\\nnext\\ttab\\u0001\\u001f\\b\\f\\r", "a": ""}},
                {"module": "token", "name": "transfer", "attributes": {}}]},
              {"transactionId": "02", "success": false, "events": []},
              {"transactionId": "03", "success": true, "events": []}]}
            """
        let view = try JSONDecoder().decode(ChainEventView.self, from: Data(source.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: view.json, as: UTF8.self) == String(decoding: try encoder.encode(view), as: UTF8.self))
        let back = try JSONDecoder().decode(ChainEventView.self, from: Data(view.json))
        #expect(back.transactions.map(\.transactionId) == ["01", "02", "03"])
        #expect(back.transactions[0].events[0].attributes == view.transactions[0].events[0].attributes)

        let empty = try JSONDecoder().decode(
            ChainEventView.self, from: Data(#"{"height": 1, "blockHash": "", "stateRoot": "", "timestampMilliseconds": 0, "proposer": 0, "transactionCount": 0, "transactions": []}"#.utf8))
        #expect(String(decoding: empty.json, as: UTF8.self) == String(decoding: try encoder.encode(empty), as: UTF8.self))
    }
}
