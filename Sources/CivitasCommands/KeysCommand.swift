import ArgumentParser
import CivitasClient
import CivitasCore
import CivitasCrypto

extension SignatureScheme: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}

extension HashSuiteID: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make and inspect keys.", subcommands: [New.self, Show.self])

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Generate a key and write it to a file (mode 0600).")

        @Option(help: "Signature scheme: ed25519, p256, sm2 or mldsa65.")
        var scheme: SignatureScheme = .ed25519

        @Option(help: "Hash suite of the chain, for the printed address: sha256 or sm3.")
        var hashSuite: HashSuiteID = .sha256

        @Option(help: "File to write; an existing file is never overwritten.")
        var out: String

        func run() async throws {
            let key = try PrivateKey.generate(scheme)
            let file = KeyFile(key, hasher: ChainHasher(hashSuite))
            try file.write(to: out)
            print("wrote \(out)")
            print("public key: \(file.publicKey)")
            print("address (\(hashSuite.name)): \(file.address)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a key file's public key and address.")

        @Argument(help: "Key file.")
        var file: String

        @Option(help: "Hash suite of the chain: sha256 or sm3.")
        var hashSuite: HashSuiteID = .sha256

        func run() async throws {
            let key = try KeyFile.load(file)
            print("scheme: \(key.scheme.name)")
            print("public key: \(key.publicKey)")
            print("address (\(hashSuite.name)): \(Address(of: key.publicKey, using: ChainHasher(hashSuite)))")
        }
    }
}
