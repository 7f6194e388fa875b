import ArgumentParser
import CivitasAPI
import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasVM
import Foundation

struct ContractCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contract", abstract: "Build, deploy, call, query and upgrade WebAssembly contracts.",
        subcommands: [Build.self, Deploy.self, CallContract.self, Query.self, Show.self, Get.self, Upgrade.self, ApproveUpgrade.self])

    /// Arguments as the CLI takes them: a JSON array of values (`'[42, "text", {"address": "…"}]'`).
    static func values(_ json: String?) throws -> [UInt8] {
        guard let json else { return [] }
        do {
            return ContractValue.encode(try JSONDecoder().decode([ContractValue].self, from: Data(json.utf8)))
        } catch {
            throw ValidationError(
                "arguments must be a JSON array of values (numbers, true/false, strings, {\"bytes\": \"0x…\"}, {\"address\": \"…\"}, {\"i64\": n}): \(JSONErrorText.describe(error))"
            )
        }
    }

    static func address(_ text: String) throws -> Address {
        guard let hash = Hash(hex: text) else { throw ValidationError("an address is 64 hex digits, not \(text.prefix(80))") }
        return Address(hash)
    }

    static func code(_ path: String) throws -> [UInt8] {
        let code = Array(try FileSystem.read(path))
        guard code.count <= ContractLimits.codeBytesMax else {
            throw CommandError("\(path) has \(code.count) bytes; a contract may have at most \(ContractLimits.codeBytesMax)")
        }
        do { try ContractValidator.validate(code) } catch { throw CommandError("the chain would refuse \(path): \(error)") }
        return code
    }

    static let deployGas: UInt64 = 50_000_000

    /// Submit options for a transaction carrying code: a larger default gas limit.
    static func codeCarrying(_ options: Submitter.Options) -> Submitter.Options {
        var options = options
        if options.gas == Submitter.Options.defaultGas { options.gas = deployGas }
        return options
    }

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compile a contract directory (Swift or C sources) into a .wasm file.",
            discussion: "Swift sources are compiled as Embedded Swift together with the SDK (contracts/sdk); C sources with its header. The module is checked as a deploy would check it.")
        @Argument(help: "The contract's directory.") var directory: String
        @Option(help: "Output file (default: DIRECTORY/<name>.wasm).") var output: String?
        @Option(help: "The SDK directory (default: contracts/sdk found from DIRECTORY, the working directory, or the civitas binary).")
        var sdk: String?
        @Flag var json = false

        func run() async throws {
            guard let sdk = sdk ?? ContractBuilder.locateSDK(from: directory) else {
                throw CommandError("contract SDK not found: pass --sdk DIR (the repository's contracts/sdk)")
            }
            let result: ContractBuilder.Output
            do { result = try ContractBuilder(sdk: sdk).build(directory, output: output, hasher: SHA256Hasher()) } catch let failure
                as ContractBuilder.Failure
            {
                throw CommandError(failure.description)
            }
            if json { return try Output.json(["path": result.path, "bytes": String(result.bytes)]) }
            print("built \(result.path) (\(result.bytes) bytes)")
        }
    }

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deploy a .wasm contract; prints its address.")
        @Argument var file: String
        @Option(name: .customLong("init"), help: "Run the method `init` with these arguments (a JSON array) at deploy.")
        var initArguments: String?
        @Option(help: "Who may upgrade it: owner, governance (a quorum of organisations), or frozen.")
        var policy = "owner"
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func validate() throws {
            guard UpgradePolicy(name: policy) != nil else { throw ValidationError("--policy is owner, governance or frozen") }
            _ = try ContractCommand.values(initArguments)
        }

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let code = try ContractCommand.code(file)
            let initArguments = try self.initArguments.map { try ContractCommand.values($0) }
            let call = Call(
                module: "contract", method: "deploy",
                arguments: ContractModule.deployArguments(code: code, policy: UpgradePolicy(name: policy) ?? .owner, initArguments: initArguments))
            let result = try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: ContractCommand.codeCarrying(submit))
            let address = result.receipt?.events.first { $0.module == "contract" && $0.name == "deployed" }?.attributes["address"]
            if node.json { return try Output.json(result) }
            try Render.submitted(result, json: false)
            if let address { print("contract address \(address)") }
        }
    }

    struct CallContract: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "call", abstract: "Call a contract method in a transaction.")
        @Argument var address: String
        @Argument var method: String
        @Argument(help: "Arguments as a JSON array, e.g. '[\"recycling\", 10]'.") var arguments: String?
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func validate() throws {
            _ = try ContractCommand.address(address)
            _ = try ContractCommand.values(arguments)
            guard !method.isEmpty, method.utf8.count <= ContractLimits.methodBytesMax else {
                throw ValidationError("METHOD has 1 to \(ContractLimits.methodBytesMax) bytes")
            }
        }

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let call = Call(
                module: "contract", method: "call",
                arguments: ContractModule.callArguments(
                    contract: try ContractCommand.address(address), method: method, arguments: try ContractCommand.values(arguments)))
            try Render.submitted(try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: submit), json: node.json)
        }
    }

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a contract method read-only on the latest state (no transaction); prints its output.")
        @Argument var address: String
        @Argument var method: String
        @Argument(help: "Arguments as a JSON array.") var arguments: String?
        @Option(help: "Address to run as (the method's caller); default the zero address.") var from: String?
        @Option(help: "Gas limit of the query.") var gas: UInt64?
        @OptionGroup var node: NodeOptions

        func validate() throws {
            _ = try ContractCommand.address(address)
            _ = try ContractCommand.values(arguments)
            if let from { _ = try ContractCommand.address(from) }
        }

        func run() async throws {
            let request = ContractQueryRequest(
                method: method, argsHex: try ContractCommand.values(arguments).hexString, caller: from, gasLimit: gas)
            let view: ContractQueryView = try await NodeClient(base: node.url).post(
                "/v1/contracts/\(address)/query", body: try JSONEncoder().encode(request), contentType: "application/json")
            if node.json { return try Output.json(view) }
            if view.success {
                if let output = view.output {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    print(String(decoding: try encoder.encode(output), as: UTF8.self))
                } else {
                    print("0x" + view.outputHex)
                }
            } else {
                print("failed: \(view.errorCode ?? "?"): \(view.errorMessage ?? "")")
            }
            for line in view.logs { print("  log: \(line)") }
            print("  height \(view.height), gas used \(view.gasUsed)")
            if !view.success { throw ExitCode(2) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A contract's owner, upgrade policy, version and code hashes.")
        @Argument var address: String
        @OptionGroup var node: NodeOptions

        func validate() throws { _ = try ContractCommand.address(address) }

        func run() async throws {
            let view: ContractView = try await NodeClient(base: node.url).get("/v1/contracts/\(address)")
            if node.json { return try Output.json(view) }
            print("contract \(view.address)")
            print("  owner \(view.owner), upgrade policy \(view.policy)")
            print("  version \(view.version), code \(view.codeHash) (\(view.codeSize) bytes)")
            print("  deployed at height \(view.deployedAt), last upgraded at \(view.upgradedAt)")
            for version in view.versions { print("  v\(version.version) code \(version.codeHash) from height \(version.height)") }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read a raw value of a contract's storage, with a proof if asked.")
        @Argument var address: String
        @Argument(help: "The storage key as text, or 0x followed by hex.") var key: String
        @Flag(help: "Fetch a proof with the block header and its certificate.") var proof = false
        @Option(help: "Write the proof document to this file (implies --proof).") var out: String?
        @OptionGroup var node: NodeOptions

        func validate() throws { _ = try ContractCommand.address(address) }

        func run() async throws {
            let raw = key.hasPrefix("0x") ? ([UInt8](hex: String(key.dropFirst(2))) ?? []) : Array(key.utf8)
            let path = "/v1/contracts/\(address)/storage/\(KeyText.encode(raw))" + (proof || out != nil ? "?proof=true" : "")
            try Render.value(try await NodeClient(base: node.url).get(path), key: key, proofFile: out, json: node.json)
        }
    }

    struct Upgrade: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace a contract's code (owner policy), or propose the replacement (governance policy).")
        @Argument var address: String
        @Argument var file: String
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func validate() throws { _ = try ContractCommand.address(address) }

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let call = Call(
                module: "contract", method: "upgrade",
                arguments: ContractModule.upgradeArguments(contract: try ContractCommand.address(address), code: try ContractCommand.code(file)))
            try Render.submitted(
                try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: ContractCommand.codeCarrying(submit)),
                json: node.json)
        }
    }

    struct ApproveUpgrade: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "approve-upgrade", abstract: "Approve a proposed upgrade of a governance-policy contract (organisation admins).")
        @Argument var address: String
        @Argument(help: "The proposed code's hash (from the upgrade_proposed event).") var codeHash: String
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func validate() throws {
            _ = try ContractCommand.address(address)
            guard Hash(hex: codeHash) != nil else { throw ValidationError("CODE_HASH is 64 hex digits") }
        }

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let call = Call(
                module: "contract", method: "approve_upgrade",
                arguments: ContractModule.approveUpgradeArguments(
                    contract: try ContractCommand.address(address), codeHash: Hash(hex: codeHash) ?? .zero))
            try Render.submitted(try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: submit), json: node.json)
        }
    }
}
