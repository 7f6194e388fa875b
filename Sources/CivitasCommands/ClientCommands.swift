import ArgumentParser
import CivitasAPI
import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import Foundation

extension NodeClient {
    /// The node's status with the chain's hash function, which addresses and ids depend on.
    func chain() async throws -> (status: StatusView, hasher: ChainHasher) {
        let status: StatusView = try await get("/v1/status")
        guard let suite = HashSuiteID(name: status.hashSuite) else {
            throw CommandError("node reports unknown hash suite \(status.hashSuite)")
        }
        return (status, ChainHasher(suite))
    }
}

extension SignerOptions {
    /// `given`, or else the address of the signing key on the node's chain.
    func address(_ given: String?, client: NodeClient) async throws -> String {
        if let given { return given }
        let key = try KeyFile.load(path())
        return Address(of: key.publicKey, using: try await client.chain().hasher).description
    }
}

/// Signs a call with the user's key and submits it, waiting for the receipt unless told not to.
struct Submitter {
    let client: NodeClient
    let key: PrivateKey

    struct Options: ParsableArguments {
        @Flag(help: "Return once the node admits the transaction, without waiting for its commit.")
        var noWait = false

        @Option(help: "Nonce to use (default: the account's next nonce).")
        var nonce: UInt64?

        static let defaultGas: UInt64 = 1_000_000

        @Option(help: "Gas limit (default: 1000000; 50000000 for contract deploys and upgrades).")
        var gas: UInt64 = defaultGas

        @Option(help: "Blocks from now after which the transaction expires.")
        var expiresIn: UInt64 = 600
    }

    func submit(_ call: Call, options: Options) async throws -> SubmitResult {
        let (status, hasher) = try await client.chain()
        let builder = TransactionBuilder(chainId: status.chainId, hashSuite: hasher.suite, key: key)
        let nonce: UInt64
        if let given = options.nonce {
            nonce = given
        } else {
            let account: AccountView = try await client.get("/v1/accounts/\(builder.address)")
            nonce = account.nonce
        }
        let (transaction, _) = try builder.sign(
            call: call, nonce: nonce, expiryHeight: status.height + options.expiresIn, gasLimit: options.gas)
        let body = Data(transaction.canonicalBytes.hexString.utf8)
        let path = options.noWait ? "/v1/transactions" : "/v1/transactions?wait=true&timeout=30000"
        return try await client.post(path, body: body, contentType: "text/plain")
    }
}

enum Render {
    /// A state value: printed, its proof document written to `proofFile` if given;
    /// exit status 3 when the key has no value.
    static func value(_ view: ValueView, key: String, proofFile: String?, json: Bool) throws {
        if let proofFile, let document = view.proof {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileSystem.write(try encoder.encode(document), to: proofFile)
        }
        if json { return try Output.json(view) }
        let text = view.value.flatMap { [UInt8](hex: $0) }.map { displayBytes($0) }
        print(view.exists ? "\(key) = \(text ?? "")" : "\(key) is not set", "(height \(view.height))")
        if let document = view.proof {
            print("state root \(document.stateRoot), block \(document.blockHash)")
            if let proofFile { print("proof written to \(proofFile); check it with: civitas proof verify \(proofFile) --genesis GENESIS") }
        }
        if !view.exists { throw ExitCode(3) }
    }

    static func submitted(_ result: SubmitResult, json: Bool) throws {
        if json { return try Output.json(result) }
        print("transaction \(result.id): \(result.status)")
        if let receipt = result.receipt { self.receipt(receipt) }
        if let receipt = result.receipt, !receipt.success { throw ExitCode(2) }
    }

    static func receipt(_ receipt: ReceiptView) {
        print("  block \(receipt.height) (\(receipt.blockHash)), index \(receipt.index)")
        if receipt.success {
            print("  success, gas used \(receipt.gasUsed)")
        } else {
            print("  failed: \(receipt.errorCode ?? "?"): \(receipt.errorMessage ?? ""), gas used \(receipt.gasUsed)")
        }
        for event in receipt.events {
            let attributes = event.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            print("  event \(event.module).\(event.name) \(attributes)")
        }
    }
}

struct KV: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv", abstract: "Write and read the kv module.", subcommands: [Put.self, Get.self, Delete.self])

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store VALUE under KEY in your namespace.")
        @Argument var key: String
        @Argument var value: String
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let call = Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array(self.key.utf8), value: Array(value.utf8)))
            try Render.submitted(try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: submit), json: node.json)
        }

        func validate() throws {
            guard key.utf8.count <= KVModule.keyBytesMax else { throw ValidationError("KEY is over \(KVModule.keyBytesMax) bytes") }
            guard value.utf8.count <= KVModule.valueBytesMax else { throw ValidationError("VALUE is over \(KVModule.valueBytesMax) bytes") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete KEY from your namespace.")
        @Argument var key: String
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let call = Call(module: "kv", method: "delete", arguments: KVModule.deleteArguments(key: Array(self.key.utf8)))
            try Render.submitted(try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: submit), json: node.json)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read KEY from an owner's namespace (yours by default).")
        @Argument var key: String
        @Option(help: "Owner address (default: the address of --key).")
        var owner: String?
        @Flag(help: "Fetch a proof with the block header and its certificate.")
        var proof = false
        @Option(help: "Write the proof document to this file (implies --proof).")
        var out: String?
        @Option(help: "Read at this height (default: latest).")
        var height: UInt64?
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions

        func run() async throws {
            let client = NodeClient(base: node.url)
            let ownerAddress = try await signer.address(owner, client: client)
            var query: [String] = []
            if proof || out != nil { query.append("proof=true") }
            if let height { query.append("height=\(height)") }
            let path = "/v1/kv/\(ownerAddress)/\(KeyText.encode(Array(key.utf8)))" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
            try Render.value(try await client.get(path), key: key, proofFile: out, json: node.json)
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Transfer and inspect token balances.", subcommands: [Transfer.self, Balance.self])

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Transfer AMOUNT to an address or public key.")
        @Option(help: "Recipient: an address (64 hex digits) or a public key (scheme:hex).")
        var to: String
        @Argument var amount: UInt64
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func run() async throws {
            let key = try KeyFile.load(signer.path())
            let client = NodeClient(base: node.url)
            let hasher = try await client.chain().hasher
            let recipient: Address
            if let hash = Hash(hex: to) {
                recipient = Address(hash)
            } else if let publicKey = try? PublicKey(text: to) {
                recipient = Address(of: publicKey, using: hasher)
            } else {
                throw ValidationError("--to must be an address (64 hex digits) or a public key (scheme:hex)")
            }
            let call = Call(module: "token", method: "transfer", arguments: TokenModule.transferArguments(to: recipient, amount: amount))
            try Render.submitted(try await Submitter(client: client, key: key).submit(call, options: submit), json: node.json)
        }
    }

    struct Balance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an account's balance and nonce (yours by default).")
        @Argument(help: "Address (default: the address of --key).")
        var address: String?
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions

        func run() async throws {
            let client = NodeClient(base: node.url)
            let target = try await signer.address(address, client: client)
            let account: AccountView = try await client.get("/v1/accounts/\(target)")
            if node.json { return try Output.json(account) }
            print("address \(account.address)")
            print("organisation \(account.organisation ?? "none")")
            print("balance \(account.balance)")
            print("nonce \(account.nonce)")
        }
    }
}

struct TxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tx", abstract: "Inspect transactions.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a transaction and its receipt.")
        @Argument var hash: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let view: TransactionView = try await NodeClient(base: node.url).get("/v1/transactions/\(hash)")
            if node.json { return try Output.json(view) }
            print("transaction \(view.id) (\(view.status))")
            print("  sender \(view.sender)")
            print("  nonce \(view.nonce), expires after \(view.expiryHeight), gas limit \(view.gasLimit)")
            print("  call \(view.call.module).\(view.call.method)(\(view.call.arguments))")
            if let receipt = view.receipt { Render.receipt(receipt) }
        }
    }
}

struct BlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "block", abstract: "Inspect blocks.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a block by height, or the latest.")
        @Argument(help: "A height or `latest`.")
        var height: String
        @OptionGroup var node: NodeOptions

        func validate() throws {
            guard height == "latest" || UInt64(height) != nil else { throw ValidationError("HEIGHT must be a number or `latest`") }
        }

        func run() async throws {
            let view: BlockView = try await NodeClient(base: node.url).get("/v1/blocks/\(height)")
            if node.json { return try Output.json(view) }
            print("block \(view.height) \(view.hash)")
            print("  parent \(view.parent)")
            print("  epoch \(view.epoch), round \(view.round), proposer \(view.proposer), time \(view.timestampMilliseconds) ms")
            print("  \(view.transactionCount) transactions, root \(view.transactionsRoot)")
            print("  receipts root \(view.receiptsRoot)")
            print("  state root \(view.stateRoot)")
            if let certificate = view.certificate { print("  certified by validators \(certificate.signers)") }
            for id in view.transactions { print("  tx \(id)") }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a node's status.")
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let view: StatusView = try await NodeClient(base: node.url).get("/v1/status")
        if node.json { return try Output.json(view) }
        print("chain \(view.chainId) (\(view.hashSuite)), height \(view.height)")
        print("  block \(view.blockHash)")
        print("  state root \(view.stateRoot)")
        print("  mempool \(view.mempoolTransactions) transactions, \(view.mempoolBytes) bytes")
        print("  validator index \(view.validatorIndex.map(String.init) ?? "none"), epoch \(view.epoch), round \(view.round), version \(view.version)")
        if let storage = view.storage {
            let state = storage.settled ? "settled" : "compacting"
            print(
                "  storage \(state): \(storage.pendingCompactionBytes) bytes of compaction pending, \(storage.level0Files) level-0 files, "
                    + "\(storage.runningCompactions) compactions and \(storage.runningFlushes) flushes running")
        }
    }
}

struct ProofCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proof", abstract: "Check proofs offline.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a proof document against a genesis file, with no node running.")
        @Argument var file: String
        @Option(help: "The chain's genesis file (default: devnet/genesis.json).")
        var genesis = "devnet/genesis.json"
        @Flag var json = false

        func run() async throws {
            let genesis = try Genesis.load(from: URL(fileURLWithPath: genesis))
            let document: ProofDocument
            do { document = try JSONDecoder().decode(ProofDocument.self, from: try FileSystem.read(file)) } catch let error as CommandError {
                throw error
            } catch {
                throw CommandError("\(file) is not a proof document: \(JSONErrorText.describe(error))")
            }
            let verified: LightClient.VerifiedValue
            do { verified = try LightClient(genesis: genesis).verify(document) } catch {
                throw CommandError("proof is INVALID: \(error)")
            }
            if json {
                return try Output.json([
                    "valid": "true", "height": String(verified.height), "key": verified.key.hexString,
                    "value": verified.value?.hexString ?? "", "exists": String(verified.value != nil),
                ])
            }
            print("proof is valid: at height \(verified.height) (block \(verified.blockHash), state root \(verified.stateRoot))")
            if let value = verified.value {
                print("  key \(displayBytes(verified.key)) has value \(displayBytes(value))")
            } else {
                print("  key \(displayBytes(verified.key)) has no value")
            }
        }
    }
}
