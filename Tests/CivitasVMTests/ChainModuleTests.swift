import CivitasCore
import CivitasModules
import CivitasTesting
import Testing

@Suite struct ChainModuleTests {
    @Test func noopTakesTheNonceAndChangesNothingElse() throws {
        let chain = try ExecutionChain()
        let key = chain.admins[1]
        let before = chain.root
        let receipt = try chain.call(key, Call(module: "chain", method: "noop", arguments: []))
        #expect(receipt.status == .success)
        #expect(receipt.events.isEmpty)
        #expect(chain.root != before)
        #expect(try StateKeys.decodeU64(chain.state.value(for: StateKeys.nonce(chain.address(key)))) == 1)
        // The same state as one that only moved the nonce: the next noop again changes
        // only the nonce, to 2.
        _ = try chain.call(key, Call(module: "chain", method: "noop", arguments: []))
        #expect(try StateKeys.decodeU64(chain.state.value(for: StateKeys.nonce(chain.address(key)))) == 2)
    }

    @Test func noopRefusesArgumentsAndUnknownMethods() throws {
        let chain = try ExecutionChain()
        let withArguments = try chain.call(chain.admins[0], Call(module: "chain", method: "noop", arguments: [1]))
        #expect(withArguments.status != .success)
        let unknown = try chain.call(chain.admins[0], Call(module: "chain", method: "halt", arguments: []))
        guard case .failure(let code, _) = unknown.status else { Issue.record("unknown method succeeded"); return }
        #expect(code == "call.unknown_method")
    }
}
