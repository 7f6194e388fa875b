import ArgumentParser
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasTesting
import CivitasVM
import Foundation

/// Benchmarks. Figures and the machine they came from go in docs/benchmarks.md.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Civitas (use a release build).", subcommands: [LoadBench.self, VerifyBench.self, ContractBench.self, StateBench.self, EtcdBench.self],
        defaultSubcommand: LoadBench.self)
}

/// Signature verifications per second on one core, for each scheme: what bounds a
/// chain's throughput, since every validator verifies every transaction once. The
/// bound for N validators sharing this machine's cores is rate × cores ÷ N.
struct VerifyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Single-core signature verification rate per scheme, and the throughput bound it sets.")

    @Option(help: "Schemes to measure (ed25519, p256, sm2, mldsa65); default all.") var scheme: [String] = []
    @Option(help: "Seconds to measure each scheme.") var seconds = 2.0
    @Option(help: "Validators sharing this machine, for the bound.") var validators = 4
    @Flag var json = false

    struct Rate: Codable {
        var scheme: String
        var verificationsPerSecond: Double
        var boundTransactionsPerSecond: Double
        /// Transaction signatures checked in batches of 64 (ADR 0008), by 64 signers and by one.
        var batchVerificationsPerSecond: Double?
        var batchOneSignerVerificationsPerSecond: Double?
        /// One transaction signature at a time by the same rule: what a failed batch falls back to.
        var singleTransactionVerificationsPerSecond: Double?
    }

    func validate() throws {
        guard (0.05...600).contains(seconds) else { throw ValidationError("--seconds must be 0.05 to 600") }
        guard (1...256).contains(validators) else { throw ValidationError("--validators must be 1 to 256") }
        for name in scheme where SignatureScheme(name: name) == nil { throw ValidationError("unknown scheme \(name)") }
    }

    /// Verifications per second of `scheme` on the calling thread, over about `seconds`.
    static func rate(_ scheme: SignatureScheme, seconds: Double) throws -> Double {
        let key = try PrivateKey.generate(scheme)
        let messages = (0..<64).map { index in [UInt8](repeating: UInt8(index), count: 48) }
        let signatures = try messages.map { try key.sign($0) }
        let verifier = SignatureVerifiers()
        return try perSecond(seconds: seconds) {
            for index in 0..<messages.count where !verifier.isValid(signatures[index], of: messages[index], by: key.publicKey) {
                throw CommandError("a \(scheme) signature did not verify")
            }
            return messages.count
        }
    }

    /// Runs `round` (which returns how many verifications it did) for about `seconds`, and
    /// returns verifications per second.
    private static func perSecond(seconds: Double, _ round: () throws -> Int) throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int64(seconds * 1_000))
        var count = 0
        while clock.now < deadline, count < 100_000_000 { count += try round() }
        let elapsed = clock.now - start
        return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// Transaction signatures per second on the calling thread through the node's own
    /// path (`areValidTransactionSignatures`), `batch` at a time, signed by `signers` keys.
    static func transactionRate(_ scheme: SignatureScheme, seconds: Double, signers: Int, batch: Int = 64) throws -> Double {
        let keys = try (0..<signers).map { _ in try PrivateKey.generate(scheme) }
        let checks = try (0..<batch).map { index in
            let key = keys[index % signers]
            let message = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 48)
            return SignatureCheck(try key.sign(message), of: message, by: key.publicKey)
        }
        let verifier = SignatureVerifiers()
        return try perSecond(seconds: seconds) {
            guard verifier.areValidTransactionSignatures(checks).allSatisfy({ $0 }) else {
                throw CommandError("a batch of \(scheme) signatures did not verify")
            }
            return checks.count
        }
    }

    /// Verifications per second with `threads` threads verifying at once, summed.
    static func parallelRate(_ scheme: SignatureScheme, seconds: Double, threads: Int) throws -> Double {
        final class Rates: @unchecked Sendable {
            let lock = NSLock()
            var total = 0.0
            var failure: (any Error)?
        }
        let rates = Rates()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            do {
                let value = try rate(scheme, seconds: seconds)
                rates.lock.withLock { rates.total += value }
            } catch {
                rates.lock.withLock { rates.failure = error }
            }
        }
        if let failure = rates.failure { throw failure }
        return rates.total
    }

    func run() async throws {
        let schemes = scheme.isEmpty ? SignatureScheme.allCases : scheme.compactMap { SignatureScheme(name: $0) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var rates: [Rate] = []
        for scheme in schemes {
            let rate = try Self.rate(scheme, seconds: seconds)
            var entry = Rate(scheme: scheme.description, verificationsPerSecond: rate, boundTransactionsPerSecond: rate * Double(cores) / Double(validators))
            if scheme == .ed25519 {
                entry.batchVerificationsPerSecond = try Self.transactionRate(scheme, seconds: seconds, signers: 64)
                entry.batchOneSignerVerificationsPerSecond = try Self.transactionRate(scheme, seconds: seconds, signers: 1)
                entry.singleTransactionVerificationsPerSecond = try Self.transactionRate(scheme, seconds: seconds, signers: 1, batch: 1)
            }
            rates.append(entry)
        }
        if json { return try Output.json(rates) }
        print("one core, one signature at a time (RFC 8032 strict; the bound); bound = rate × \(cores) cores ÷ \(validators) validators")
        for rate in rates {
            let name = rate.scheme.padding(toLength: 8, withPad: " ", startingAt: 0)
            print("  \(name)" + String(format: " %10.0f verifications/s   bound %8.0f tx/s", rate.verificationsPerSecond, rate.boundTransactionsPerSecond))
        }
        for rate in rates {
            guard let batch = rate.batchVerificationsPerSecond, let oneSigner = rate.batchOneSignerVerificationsPerSecond else { continue }
            print("\(rate.scheme) transaction signatures in batches of 64, one core (ADR 0008):")
            print(String(format: "  64 signers %10.0f verifications/s   %.1f× one at a time", batch, batch / rate.verificationsPerSecond))
            print(String(format: "  1 signer   %10.0f verifications/s   %.1f× one at a time", oneSigner, oneSigner / rate.verificationsPerSecond))
            if let single = rate.singleTransactionVerificationsPerSecond {
                print(String(format: "  alone      %10.0f verifications/s   %.1f× (a failed batch falls back to this)", single, single / rate.verificationsPerSecond))
            }
        }
    }
}

/// The cost of a contract call in the executor, without consensus or network: the
/// citizen-points example built from source, its `earn` method in blocks of
/// transactions (state writes, an event, gas) and its `balance` method as a query;
/// beside it, the same number of `kv.put` calls of the built-in module.
struct ContractBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contract", abstract: "Cost per contract call: transactions and queries of the citizen-points example.")

    @Option(help: "Calls per block.") var block = 1_000
    @Option(help: "Blocks of calls (after one warm-up block).") var blocks = 5
    @Option(help: "Queries.") var queries = 20_000
    @Option(help: "The contract SDK directory (default: found from the working directory).") var sdk: String?
    @Flag var json = false

    func validate() throws {
        guard (1...10_000).contains(block) else { throw ValidationError("--block must be 1 to 10000") }
        guard (1...1_000).contains(blocks) else { throw ValidationError("--blocks must be 1 to 1000") }
        guard (1...10_000_000).contains(queries) else { throw ValidationError("--queries must be 1 to 10000000") }
    }

    struct Result: Codable {
        var contractCallMicroseconds: Double
        var contractCallsPerSecond: Double
        var contractGasPerCall: UInt64
        var kvCallMicroseconds: Double
        var queryMicroseconds: Double
        var queriesPerSecond: Double
        var firstCallMicroseconds: Double
        var codeBytes: Int
        var machine: String
    }

    func run() async throws {
        guard let sdk = sdk ?? ContractBuilder.locateSDK(from: FileManager.default.currentDirectoryPath) else {
            throw CommandError("contract SDK not found: run from the repository or pass --sdk")
        }
        let example = URL(fileURLWithPath: sdk).deletingLastPathComponent().appendingPathComponent("examples/citizen-points").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("civitas-bench-\(UUID().uuidString).wasm").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let built = try ContractBuilder(sdk: sdk).build(example, output: output, hasher: SHA256Hasher())
        let code = Array(try FileSystem.read(built.path))

        let chain = try ExecutionChain()
        let authority = chain.admins[0]
        let issuer = chain.admins[1]
        let contract = ContractModule.address(deployer: chain.address(authority), sequence: 0, hasher: chain.hasher)
        let setup = try chain.block([
            (authority, Call(module: "contract", method: "deploy", arguments: ContractModule.deployArguments(code: code, policy: .owner, initArguments: []))),
            (authority, Self.call(contract, "set_rule", [.string("recycling"), .u64(1)])),
            (authority, Self.call(contract, "grant_issuer", [.address(chain.address(issuer))])),
        ], gasLimit: 50_000_000)
        guard setup.allSatisfy({ $0.status == .success }) else { throw CommandError("setting up the contract failed: \(setup.map(\.status))") }

        // Citizens are made-up addresses: earning needs no key of theirs.
        func earnBlock(_ round: Int) throws -> [VerifiedTransaction] {
            try chain.sign(
                (0..<block).map { index in
                    let citizen = Address(chain.hasher.hash(Array("citizen \(round) \(index % 100)".utf8)))
                    return (issuer, Self.call(contract, "earn", [.address(citizen), .string("recycling")]))
                })
        }
        var timing = ContinuousClock().measure { _ = try? chain.execute(earnBlock(-1)) }
        let firstCall = timing
        var contractTime = Duration.zero
        var gas: UInt64 = 0
        for round in 0..<blocks {
            let transactions = try earnBlock(round)
            var receipts: [Receipt] = []
            timing = try ContinuousClock().measure { receipts = try chain.execute(transactions) }
            contractTime += timing
            guard receipts.allSatisfy({ $0.status == .success }) else { throw CommandError("an earn call failed: \(receipts[0].status)") }
            gas = receipts[0].gasUsed
        }

        var kvTime = Duration.zero
        for round in 0..<blocks {
            let transactions = try chain.sign(
                (0..<block).map { index in
                    (issuer, Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array("k\(round)-\(index)".utf8), value: [UInt8](repeating: 7, count: 100))))
                })
            timing = try ContinuousClock().measure { _ = try chain.execute(transactions) }
            kvTime += timing
        }

        let citizen = Address(chain.hasher.hash(Array("citizen 0 0".utf8)))
        let arguments = ContractValue.encode([.address(citizen)])
        let queryTime = ContinuousClock().measure {
            for _ in 0..<queries {
                _ = chain.executor.query(
                    contract: contract, method: "balance", arguments: arguments, caller: chain.address(issuer), gasLimit: 10_000_000,
                    height: chain.height, base: chain.state)
            }
        }

        let calls = Double(block * blocks)
        func micros(_ duration: Duration) -> Double { Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12 }
        let result = Result(
            contractCallMicroseconds: micros(contractTime) / calls, contractCallsPerSecond: calls / (micros(contractTime) / 1e6),
            contractGasPerCall: gas, kvCallMicroseconds: micros(kvTime) / calls, queryMicroseconds: micros(queryTime) / Double(queries),
            queriesPerSecond: Double(queries) / (micros(queryTime) / 1e6), firstCallMicroseconds: micros(firstCall) / Double(block),
            codeBytes: code.count, machine: "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB")
        if json { return try Output.json(result) }
        print("citizen-points (\(code.count) bytes), \(block) calls per block, \(blocks) blocks, one core, executor only")
        print(String(format: "  earn (contract, writes + event):  %8.1f µs/call  %9.0f calls/s  %llu gas", result.contractCallMicroseconds, result.contractCallsPerSecond, gas))
        print(String(format: "  kv.put (built-in module):         %8.1f µs/call", result.kvCallMicroseconds))
        print(String(format: "  balance (query, read-only):       %8.1f µs/call  %9.0f calls/s", result.queryMicroseconds, result.queriesPerSecond))
        print(String(format: "  warm-up block (module parse once): %7.1f µs/call", result.firstCallMicroseconds))
        print("  machine: \(result.machine)")
    }

    static func call(_ contract: Address, _ method: String, _ values: [ContractValue]) -> Call {
        Call(
            module: "contract", method: "call",
            arguments: ContractModule.callArguments(contract: contract, method: method, arguments: ContractValue.encode(values)))
    }
}
