import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasState
import CivitasStorage
import CivitasTesting
import Testing

/// The governance module through the executor, block by block on a real state tree:
/// who may propose and approve, when a change takes effect, and every refusal.
@Suite struct GovernanceTests {
    typealias Chain = ExecutionChain

    static func code(_ receipt: Receipt) -> String? {
        if case .failure(let code, _) = receipt.status { return code }
        return nil
    }

    func addition(_ chain: Chain, key: PrivateKey, newAdmin: PrivateKey) -> ValidatorChange {
        .add(
            .init(
                validator: key.publicKey, power: 2, organisation: "org9", address: "10.0.0.9:7809",
                newOrganisation: .init(
                    name: "Organisation Nine", admins: [newAdmin.publicKey],
                    tlsAuthority: "-----BEGIN CERTIFICATE-----\nca9\n-----END CERTIFICATE-----\n")))
    }

    @Test func aChangeTakesEffectOnceMoreThanTwoThirdsOfOrganisationsApprove() throws {
        let chain = try Chain()
        let newValidator = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 77, count: 32))
        let newAdmin = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 78, count: 32))
        let change = addition(chain, key: newValidator, newAdmin: newAdmin)

        #expect(try chain.propose(chain.admins[0], change).status.isSuccess)
        #expect(Self.code(try chain.approve(chain.admins[0], change)) == "governance.already_approved")
        #expect(Self.code(try chain.approve(chain.outsider, change)) == "governance.not_admin")
        #expect(try chain.approve(chain.admins[1], change).status.isSuccess)
        #expect(try chain.validatorSet.epoch == 0, "two of four organisations are not a quorum")

        let effective = try chain.approve(chain.admins[2], change)
        #expect(effective.status.isSuccess)
        let changed = effective.events.first { $0.name == "validators_changed" }
        #expect(changed?.attributes.first { $0.key == "effective_height" }?.value == String(chain.height + 1))
        let set = try chain.validatorSet
        #expect(set.epoch == 1 && set.validators.count == 5)
        #expect(set.validators.last == Validator(organisation: "org9", publicKey: newValidator.publicKey, power: 2))
        // The new organisation is a member now: its admin may govern, its validator has an endpoint.
        #expect(try chain.state.value(for: StateKeys.admin(Address(of: newAdmin.publicKey, using: chain.hasher))) == Array("org9".utf8))
        #expect(try chain.state.value(for: StateKeys.peerAddress(Address(of: newValidator.publicKey, using: chain.hasher))) == Array("10.0.0.9:7809".utf8))
        #expect(try GovernanceModule.organisations(chain.state.value(for: StateKeys.organisations)).count == 5)
        // The proposal is closed: approving it again finds nothing.
        #expect(Self.code(try chain.approve(chain.admins[3], change)) == "governance.unknown_proposal")

        // Removing takes four of five organisations now.
        let removal = ValidatorChange.remove(chain.validators[1].publicKey)
        #expect(try chain.propose(newAdmin, removal).status.isSuccess)
        for admin in [chain.admins[0], chain.admins[2]] { #expect(try chain.approve(admin, removal).status.isSuccess) }
        #expect(try chain.validatorSet.epoch == 1)
        #expect(try chain.approve(chain.admins[3], removal).status.isSuccess)
        #expect(try chain.validatorSet.epoch == 2)
        #expect(try chain.validatorSet.index(of: chain.validators[1].publicKey) == nil)
    }

    @Test func invalidChangesAndCallsFailWithTheirReasonAndChangeNothing() throws {
        let chain = try Chain()
        let admin = chain.admins[0]
        let newAdmin = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 78, count: 32))
        let fresh = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 79, count: 32))
        let before = chain.root
        func add(_ key: PublicKey, org: String = "org1", address: String = "127.0.0.1:7801", power: UInt64 = 1) -> ValidatorChange {
            .add(.init(validator: key, power: power, organisation: org, address: address))
        }
        let cases: [(ValidatorChange, String)] = [
            (add(chain.validators[2].publicKey), "governance.invalid_change"),  // already a validator
            (add(fresh.publicKey, org: "nowhere"), "governance.invalid_change"),  // unknown organisation, not described
            (add(fresh.publicKey, address: "no-port"), "governance.invalid_change"),
            (add(fresh.publicKey, address: "host:70000"), "governance.invalid_change"),
            (add(fresh.publicKey, power: 0), "governance.invalid_change"),
            (add(chain.admins[3].publicKey), "governance.invalid_change"),  // a key of another organisation
            (.add(.init(validator: fresh.publicKey, power: 1, organisation: "org2", address: "h:1", newOrganisation: .init(name: "x", admins: [newAdmin.publicKey], tlsAuthority: "-----BEGIN CERTIFICATE-----"))), "governance.invalid_change"),  // org2 exists
            (.add(.init(validator: fresh.publicKey, power: 1, organisation: "org9", address: "h:1", newOrganisation: .init(name: "x", admins: [], tlsAuthority: "-----BEGIN CERTIFICATE-----"))), "governance.invalid_change"),  // no admins
            (.add(.init(validator: fresh.publicKey, power: 1, organisation: "org9", address: "h:1", newOrganisation: .init(name: "x", admins: [chain.admins[1].publicKey], tlsAuthority: "-----BEGIN CERTIFICATE-----"))), "governance.invalid_change"),  // admin of another organisation
            (.add(.init(validator: fresh.publicKey, power: 1, organisation: "org9", address: "h:1", newOrganisation: .init(name: "x", admins: [newAdmin.publicKey], tlsAuthority: "not a certificate"))), "governance.invalid_change"),
            (.remove(fresh.publicKey), "governance.invalid_change"),  // not a validator
        ]
        for (change, expected) in cases {
            #expect(Self.code(try chain.propose(admin, change)) == expected, "\(change)")
        }
        #expect(Self.code(try chain.propose(chain.outsider, add(fresh.publicKey))) == "governance.not_admin")
        #expect(Self.code(try chain.call(admin, "approve", [1, 2, 3])) == "call.invalid_arguments")
        #expect(Self.code(try chain.call(admin, "propose", [9])) == "call.invalid_arguments")
        #expect(Self.code(try chain.call(admin, "abdicate", [])) == "call.unknown_method")
        #expect(Self.code(try chain.approve(admin, add(fresh.publicKey))) == "governance.unknown_proposal")
        // Nothing but nonces moved.
        #expect(try chain.validatorSet.epoch == 0)
        #expect(chain.root != before)
        #expect(try chain.state.value(for: StateKeys.proposal(GovernanceModule.proposalId(add(fresh.publicKey), hasher: chain.hasher))) == nil)

        // An open proposal cannot be opened twice.
        #expect(try chain.propose(admin, add(fresh.publicKey)).status.isSuccess)
        #expect(Self.code(try chain.propose(chain.admins[1], add(fresh.publicKey))) == "governance.duplicate")
    }

    @Test func theLastValidatorCannotBeRemovedAndOneChangePerBlock() throws {
        let lone = try Chain(organisations: 1)
        #expect(Self.code(try lone.propose(lone.admins[0], .remove(lone.validators[0].publicKey))) == "governance.invalid_change")

        // With one organisation a proposal is its own quorum: two in one block, the
        // second is refused, since the block that changes the set ends the epoch.
        let first = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 81, count: 32))
        let second = try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 82, count: 32))
        let receipts = try lone.block([first, second].map { key in
            (lone.admins[0], Call(module: "governance", method: "propose", arguments: GovernanceModule.proposeArguments(
                .add(.init(validator: key.publicKey, power: 1, organisation: "org0", address: "127.0.0.1:1")))))
        })
        #expect(receipts[0].status.isSuccess)
        #expect(Self.code(receipts[1]) == "governance.change_pending")
        #expect(try lone.validatorSet.epoch == 1 && lone.validatorSet.validators.count == 2)
    }
}

/// Governance calls as the tests make them.
extension ExecutionChain {
    func call(_ key: PrivateKey, _ method: String, _ arguments: [UInt8]) throws -> Receipt {
        try call(key, Call(module: "governance", method: method, arguments: arguments))
    }

    func propose(_ key: PrivateKey, _ change: ValidatorChange) throws -> Receipt {
        try call(key, "propose", GovernanceModule.proposeArguments(change))
    }

    func approve(_ key: PrivateKey, _ change: ValidatorChange) throws -> Receipt {
        try call(key, "approve", GovernanceModule.approveArguments(id: GovernanceModule.proposalId(change, hasher: hasher)))
    }

    var validatorSet: ValidatorSet { get throws { try ValidatorSet(canonicalBytes: try state.value(for: ValidatorSet.stateKey) ?? []) } }
}
