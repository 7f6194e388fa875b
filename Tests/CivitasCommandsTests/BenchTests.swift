import ArgumentParser
import CivitasCore
import Testing

@testable import CivitasCommands

@Suite struct BenchTests {
    @Test(arguments: SignatureScheme.allCases)
    func everySchemeVerifiesItsOwnSignaturesAtSomeRate(_ scheme: SignatureScheme) throws {
        #expect(try VerifyBench.rate(scheme, seconds: 0.05) > 0)
    }

    @Test func badOptionsAreRefusedBeforeAnythingRuns() throws {
        #expect(throws: (any Error).self) { try VerifyBench.parse(["--scheme", "rsa"]) }
        #expect(throws: (any Error).self) { try VerifyBench.parse(["--seconds", "0"]) }
        #expect(throws: (any Error).self) { try ContractBench.parse(["--block", "0"]) }
        #expect(try VerifyBench.parse(["--scheme", "sm2", "--validators", "1"]).validators == 1)
    }
}
