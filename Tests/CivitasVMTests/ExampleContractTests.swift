import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasTesting
import CivitasVM
import Foundation
import Testing

/// The example contracts of `contracts/examples`, compiled from Swift (and C) with the
/// SDK in this test run, deployed and used through the executor as their users would.
@Suite struct ExampleContractTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Each example is built once per test run.
    static let built: [String: Result<[UInt8], ContractBuilder.Failure>] = {
        let builder = ContractBuilder(sdk: repository + "/contracts/sdk")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("civitas-examples-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: output) }
        var built: [String: Result<[UInt8], ContractBuilder.Failure>] = [:]
        for name in ["citizen-points", "e-invoice", "rental-registry", "c-counter"] {
            do {
                let result = try builder.build(
                    repository + "/contracts/examples/" + name, output: output + "/" + name + ".wasm", hasher: SHA256Hasher())
                built[name] = .success(Array(try Data(contentsOf: URL(fileURLWithPath: result.path))))
            } catch {
                built[name] = .failure(error as? ContractBuilder.Failure ?? ContractBuilder.Failure(String(describing: error)))
            }
        }
        return built
    }()

    let chain: ExecutionChain
    init() throws { chain = try ExecutionChain() }

    func deploy(_ name: String, by key: PrivateKey, initArguments: [ContractValue]? = nil) throws -> Address {
        let code = try #require(try Self.built[name]?.get())
        let sender = chain.address(key)
        let sequence = try StateKeys.decodeU64(chain.state.value(for: ContractKeys.deployCounter(sender)))
        let receipt = try chain.call(
            key,
            Call(
                module: "contract", method: "deploy",
                arguments: ContractModule.deployArguments(code: code, policy: .owner, initArguments: initArguments.map(ContractValue.encode))),
            gasLimit: 50_000_000)
        try #require(receipt.status == .success, "deploy of \(name): \(receipt.status)")
        return ContractModule.address(deployer: sender, sequence: sequence, hasher: chain.hasher)
    }

    @discardableResult
    func call(_ contract: Address, _ method: String, _ arguments: [ContractValue], by key: PrivateKey) throws -> Receipt {
        try chain.call(
            key,
            Call(
                module: "contract", method: "call",
                arguments: ContractModule.callArguments(contract: contract, method: method, arguments: ContractValue.encode(arguments))))
    }

    func query(_ contract: Address, _ method: String, _ arguments: [ContractValue]) throws -> [ContractValue] {
        let result = chain.executor.query(
            contract: contract, method: method, arguments: ContractValue.encode(arguments), caller: chain.address(chain.outsider),
            gasLimit: 10_000_000, height: chain.height, base: chain.state)
        if let error = result.error { throw error }
        return try ContractValue.decode(result.output)
    }

    static func reverted(_ receipt: Receipt) -> String? {
        if case .failure("contract.reverted", let message) = receipt.status { return message }
        return nil
    }

    @Test func everyExampleBuildsIntoAModuleTheChainAccepts() throws {
        for (name, result) in Self.built.sorted(by: { $0.key < $1.key }) {
            let code = try result.get()
            #expect(code.count < 32 * 1024, "\(name) is \(code.count) bytes")
            #expect(throws: Never.self) { try ContractValidator.validate(code) }
        }
    }

    @Test func citizenPoints() throws {
        let authority = chain.admins[0]
        let department = chain.admins[1]
        let citizen = chain.outsider
        let points = try deploy("citizen-points", by: authority, initArguments: [])
        let citizenAddress = ContractValue.address(chain.address(citizen))

        #expect(try call(points, "set_rule", [.string("recycling"), .u64(10)], by: authority).status == .success)
        #expect(Self.reverted(try call(points, "set_rule", [.string("parking"), .u64(99)], by: department)) == "only the authority sets rules and issuers")
        #expect(Self.reverted(try call(points, "earn", [citizenAddress, .string("recycling")], by: department)) == "only an issuer awards points")
        #expect(try call(points, "grant_issuer", [.address(chain.address(department))], by: authority).status == .success)

        let earned = try call(points, "earn", [citizenAddress, .string("recycling")], by: department)
        #expect(earned.status == .success)
        #expect(earned.events.last?.name == "earned")
        #expect(earned.events.last?.attributes.contains(.init("balance", "10")) == true)
        try call(points, "earn", [citizenAddress, .string("recycling")], by: department)
        #expect(Self.reverted(try call(points, "earn", [citizenAddress, .string("jaywalking")], by: department)) == "no such rule")
        #expect(try query(points, "balance", [citizenAddress]) == [.u64(20)])

        #expect(try call(points, "spend", [.u64(15), .string("museum")], by: citizen).status == .success)
        #expect(Self.reverted(try call(points, "spend", [.u64(6), .string("bus pass")], by: citizen)) == "insufficient points")
        #expect(try query(points, "balance", [citizenAddress]) == [.u64(5)])
        #expect(Self.reverted(try call(points, "spend", [.string("wrong order"), .u64(1)], by: citizen)) == "an argument has the wrong type")
        #expect(Self.reverted(try call(points, "init", [], by: citizen)) == "already initialised")
        #expect(try query(points, "rule", [.string("recycling")]) == [.u64(10)])
    }

    @Test func eInvoiceIsReimbursedExactlyOnce() throws {
        let supplier = chain.admins[1]
        let patient = chain.outsider
        let insurer = chain.admins[2]
        let invoices = try deploy("e-invoice", by: chain.admins[0])
        let id = ContractValue.string("INV-2026-0001")

        #expect(try call(invoices, "issue", [id, .address(chain.address(patient)), .u64(50_000)], by: supplier).status == .success)
        #expect(Self.reverted(try call(invoices, "issue", [id, .address(chain.address(patient)), .u64(1)], by: supplier)) == "invoice id already used")
        #expect(Self.reverted(try call(invoices, "reimburse", [id], by: insurer)) == "only the holder is reimbursed")
        #expect(try call(invoices, "transfer", [id, .address(chain.address(insurer))], by: patient).status == .success)

        let first = try call(invoices, "reimburse", [id], by: insurer)
        #expect(first.status == .success)
        #expect(first.events.last?.name == "reimbursed")
        #expect(Self.reverted(try call(invoices, "reimburse", [id], by: insurer)) == "invoice already reimbursed")
        #expect(Self.reverted(try call(invoices, "transfer", [id, .address(chain.address(patient))], by: insurer)) == "a reimbursed invoice cannot be transferred")
        #expect(
            try query(invoices, "get", [id])
                == [.address(chain.address(supplier)), .address(chain.address(insurer)), .u64(50_000), .bool(true)])
        #expect(throws: ExecutionError.self) { try query(invoices, "get", [.string("INV-missing")]) }
    }

    @Test func rentalRegistryKeepsEveryLeaseInTheHistory() throws {
        let landlord = chain.admins[3]
        let tenant = chain.outsider
        let registry = try deploy("rental-registry", by: chain.admins[0])
        let flat = ContractValue.string("Hangzhou/Xihu/12-3-501")

        #expect(try call(registry, "list", [flat, .u64(4_200)], by: landlord).status == .success)
        #expect(Self.reverted(try call(registry, "lease", [flat, .address(chain.address(tenant))], by: tenant)) == "only the landlord registers a lease")
        #expect(try call(registry, "lease", [flat, .address(chain.address(tenant))], by: landlord).status == .success)
        #expect(Self.reverted(try call(registry, "lease", [flat, .address(chain.address(chain.admins[1]))], by: landlord)) == "property is already leased")
        #expect(
            try query(registry, "show", [flat]) == [.address(chain.address(landlord)), .u64(4_200), .bool(true), .address(chain.address(tenant))])
        #expect(try call(registry, "end_lease", [flat], by: tenant).status == .success)
        #expect(Self.reverted(try call(registry, "end_lease", [flat], by: tenant)) == "property is not leased")

        let history = try query(registry, "history", [flat])
        #expect(history.first == .u64(3))
        let kinds = history.compactMap { value -> String? in if case .string(let kind) = value { kind } else { nil } }
        #expect(kinds == ["listed", "leased", "ended"])
    }

    @Test func aContractWrittenInCRunsToo() throws {
        let counter = try deploy("c-counter", by: chain.admins[0])
        #expect(try call(counter, "increment", [], by: chain.admins[1]).status == .success)
        #expect(try call(counter, "increment", [], by: chain.outsider).status == .success)
        #expect(try query(counter, "get", []) == [.u64(2)])
        #expect(Self.reverted(try call(counter, "decrement", [], by: chain.outsider)) == "unknown method")
    }
}
