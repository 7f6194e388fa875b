import ArgumentParser
import CivitasAPI
import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import Foundation

/// `civitas validator add|remove|list`: validator-set changes proposed by an
/// organisation admin; they take effect once more than two thirds of the organisations
/// approved (`civitas governance approve`).
struct ValidatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validator", abstract: "Propose validator-set changes and list the validators.",
        subcommands: [Add.self, Remove.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Propose adding a validator (and, with --tls-authority, its new organisation).",
            discussion: """
                Signed with an organisation admin's key (--key). The proposal counts as that \
                organisation's approval; admins of other organisations approve it with \
                `civitas governance approve ID`. With --home, the validator key and peer \
                address are read from that node's home.
                """)

        @Option(help: "Home of the node to add (reads keys/validator.json and node.json).")
        var home: String?
        @Option(help: "The validator's public key (scheme:hex), if not read from --home.")
        var validatorKey: String?
        @Option(help: "host:port where the other validators reach it, if not read from --home.")
        var address: String?
        @Option(help: "Organisation id the validator belongs to.")
        var organisation: String
        @Option(help: "Voting power.")
        var power: UInt64 = 1
        @Option(help: "For a new organisation: its CA certificate (PEM file).")
        var tlsAuthority: String?
        @Option(help: "For a new organisation: its display name.")
        var organisationName: String?
        @Option(help: "For a new organisation: an admin public key (scheme:hex); repeatable.")
        var organisationAdmin: [String] = []
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func run() async throws {
            var key = try validatorKey.map { try PublicKey(text: $0) }
            var endpoint = address
            if let home {
                let config = try NodeConfig.load(home: home)
                if key == nil, let file = config.validatorKey {
                    key = try KeyFile.load(file.hasPrefix("/") ? file : home + "/" + file).publicKey
                }
                if endpoint == nil { endpoint = "\(config.p2pHost):\(config.p2pPort)" }
            }
            guard let key else { throw ValidationError("pass --validator-key or --home") }
            guard let endpoint else { throw ValidationError("pass --address or --home") }
            var newOrganisation: ValidatorChange.NewOrganisation?
            if let tlsAuthority {
                guard !organisationAdmin.isEmpty else { throw ValidationError("a new organisation needs --organisation-admin") }
                newOrganisation = .init(
                    name: organisationName ?? organisation, admins: try organisationAdmin.map { try PublicKey(text: $0) },
                    tlsAuthority: String(decoding: try FileSystem.read(tlsAuthority), as: UTF8.self))
            }
            let change = ValidatorChange.add(
                .init(validator: key, power: power, organisation: organisation, address: endpoint, newOrganisation: newOrganisation))
            try await Governance.propose(change, node: node, signer: signer, submit: submit)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Propose removing a validator.")
        @Option(help: "The validator's public key (scheme:hex).")
        var validatorKey: String
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func run() async throws {
            try await Governance.propose(.remove(try PublicKey(text: validatorKey)), node: node, signer: signer, submit: submit)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the validators of the current epoch.")
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let client = NodeClient(base: node.url)
            let set = try ValidatorSet(canonicalBytes: try await Governance.state(ValidatorSet.stateKey, client: client) ?? [])
            if node.json {
                struct Entry: Encodable { var index: Int, organisation: String, publicKey: String, power: UInt64 }
                struct Listing: Encodable { var epoch: UInt64, validators: [Entry] }
                return try Output.json(
                    Listing(
                        epoch: set.epoch,
                        validators: set.validators.enumerated().map {
                            Entry(index: $0.offset, organisation: $0.element.organisation, publicKey: $0.element.publicKey.description, power: $0.element.power)
                        }))
            }
            print("epoch \(set.epoch), \(set.validators.count) validators, quorum \(set.quorumPower) of \(set.totalPower) power")
            for (index, validator) in set.validators.enumerated() {
                print("  \(index)  \(validator.organisation)  \(validator.publicKey)  power \(validator.power)")
            }
        }
    }
}

struct GovernanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "governance", abstract: "Approve and inspect governance proposals.", subcommands: [Approve.self, Show.self])

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve proposal ID on behalf of your organisation.")
        @Argument(help: "The proposal id (hex), as `validator add|remove` printed it.")
        var id: String
        @OptionGroup var node: NodeOptions
        @OptionGroup var signer: SignerOptions
        @OptionGroup var submit: Submitter.Options

        func run() async throws {
            guard let hash = Hash(hex: id) else { throw ValidationError("ID must be 64 hex digits") }
            let key = try KeyFile.load(signer.path())
            let call = Call(module: "governance", method: "approve", arguments: GovernanceModule.approveArguments(id: hash))
            let result = try await Submitter(client: NodeClient(base: node.url), key: key).submit(call, options: submit)
            try Render.submitted(result, json: node.json)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an open proposal: the change and who approved it.")
        @Argument(help: "The proposal id (hex).")
        var id: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            guard let hash = Hash(hex: id) else { throw ValidationError("ID must be 64 hex digits") }
            let client = NodeClient(base: node.url)
            guard let bytes = try await Governance.state(StateKeys.proposal(hash), client: client) else {
                throw CommandError("no open proposal \(id) (it never existed, took effect, or expired)")
            }
            let proposal = try GovernanceProposal(canonicalBytes: bytes)
            let organisations = try GovernanceModule.organisations(try await Governance.state(StateKeys.organisations, client: client))
            switch proposal.change {
            case .add(let addition):
                print("add validator \(addition.validator) of \(addition.organisation) at \(addition.address), power \(addition.power)"
                    + (addition.newOrganisation != nil ? " (new organisation)" : ""))
            case .remove(let key):
                print("remove validator \(key)")
            }
            print("approved by \(proposal.approvals.joined(separator: ", ")); needs \(GovernanceModule.quorum(organisations: organisations.count)) of \(organisations.count) organisations")
            print("open until height \(proposal.expiryHeight)")
        }
    }
}

enum Governance {
    static func propose(_ change: ValidatorChange, node: NodeOptions, signer: SignerOptions, submit: Submitter.Options) async throws {
        let key = try KeyFile.load(signer.path())
        let client = NodeClient(base: node.url)
        let call = Call(module: "governance", method: "propose", arguments: GovernanceModule.proposeArguments(change))
        let result = try await Submitter(client: client, key: key).submit(call, options: submit)
        let id = GovernanceModule.proposalId(change, hasher: try await client.chain().hasher)
        if !node.json { print("proposal \(id.hex)") }
        try Render.submitted(result, json: node.json)
    }

    /// The latest value of a raw state key, nil when absent.
    static func state(_ key: [UInt8], client: NodeClient) async throws -> [UInt8]? {
        let view: ValueView = try await client.get("/v1/state/\(key.hexString)")
        guard let hex = view.value else { return nil }
        guard let bytes = [UInt8](hex: hex) else { throw CommandError("node returned a value that is not hex") }
        return bytes
    }
}
