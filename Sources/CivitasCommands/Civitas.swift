import ArgumentParser

/// The `civitas` command line: node, devnet, keys, and the client commands.
public struct Civitas: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "civitas",
        abstract: "Civitas: a permissioned blockchain platform for governments.",
        version: "0.1.0",
        subcommands: [
            Keys.self, Init.self, NodeCommand.self, Devnet.self, KV.self, TokenCommand.self, TxCommand.self,
            BlockCommand.self, Status.self, ProofCommand.self, ContractCommand.self, ValidatorCommand.self, GovernanceCommand.self,
            Sim.self, Bench.self,
        ])

    public init() {}
}

/// Options shared by commands that talk to a node.
struct NodeOptions: ParsableArguments {
    @Option(help: "Node API URL (default: $CIVITAS_NODE or http://127.0.0.1:7700).")
    var node: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    var url: String {
        node ?? ProcessEnvironment.value("CIVITAS_NODE") ?? "http://127.0.0.1:7700"
    }
}

/// Options of commands that sign.
struct SignerOptions: ParsableArguments {
    @Option(help: "Key file to sign with (default: $CIVITAS_KEY, or devnet/keys/client.json if present).")
    var key: String?

    func path() throws -> String {
        if let key { return key }
        if let env = ProcessEnvironment.value("CIVITAS_KEY") { return env }
        let fallback = "devnet/keys/client.json"
        if FileSystem.exists(fallback) { return fallback }
        throw ValidationError("no key: pass --key FILE or set CIVITAS_KEY")
    }
}
