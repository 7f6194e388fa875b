import CivitasCore
import CivitasCrypto
import CivitasNetwork
import NIOCore
import Synchronization
import Testing

/// Real TCP on 127.0.0.1 with mutual TLS between in-process nodes (ports picked by the
/// system). Waits are bounded by a deadline and end as soon as what they wait for arrives.
@Suite struct PeerNetworkTests {
    struct Organisation {
        var id: String
        var authority: TLSIdentity
        var key: PrivateKey
    }

    let organisations: [Organisation]
    let validators: ValidatorSet
    let genesisHash = ChainHasher(.sha256).hash(Array("genesis".utf8))

    init() throws {
        organisations = try (0..<4).map { index in
            Organisation(
                id: "org\(index)", authority: try TLSIdentity.makeAuthority(organisation: "org\(index)"),
                key: try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8(index + 1), count: 32)))
        }
        validators = try ValidatorSet(
            epoch: 0, validators: organisations.map { Validator(organisation: $0.id, publicKey: $0.key.publicKey, power: 1) })
    }

    /// Frames received, by receiver, as (sender, payload).
    final class Inbox: Sendable {
        let frames = Mutex<[Int: [(UInt16, [UInt8])]]>([:])
        let stream: AsyncStream<Void>
        let continuation: AsyncStream<Void>.Continuation

        init() { (stream, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded) }

        func record(_ receiver: Int, _ sender: UInt16, _ frame: Frame) {
            frames.withLock { $0[receiver, default: []].append((sender, frame.bytes)) }
            continuation.yield()
        }

        func count(_ receiver: Int) -> Int { frames.withLock { $0[receiver]?.count ?? 0 } }

        /// Waits until `condition` holds, or the deadline passes.
        func wait(seconds: Int = 20, until condition: @escaping @Sendable () -> Bool) async -> Bool {
            if condition() { return true }
            return await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await _ in self.stream where condition() { return true }
                    return false
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(seconds))
                    return false
                }
                let result = await group.next() ?? false
                group.cancelAll()
                continuation.yield()
                return result
            }
        }
    }

    func network(
        _ index: Int, identity: TLSIdentity? = nil, key: PrivateKey? = nil, inbox: Inbox, receiver: Int? = nil
    ) throws -> PeerNetwork {
        let config = PeerNetworkConfig(
            chainId: "net-test", genesisHash: genesisHash, validators: validators,
            authorities: Dictionary(uniqueKeysWithValues: organisations.map { ($0.id, $0.authority.certificatePEM) }),
            validatorKey: key ?? organisations[index].key,
            identity: try identity ?? organisations[index].authority.issueNode(named: "node\(index)"),
            listen: PeerAddress(host: "127.0.0.1", port: 0), peers: [:])
        let slot = receiver ?? index
        return try PeerNetwork(config: config) { sender, frame in inbox.record(slot, sender, frame) }
    }

    @Test func fourValidatorsConnectAndExchangeFrames() async throws {
        let inbox = Inbox()
        let networks = try (0..<4).map { try network($0, inbox: inbox) }
        var ports: [UInt16: PeerAddress] = [:]
        for (index, network) in networks.enumerated() {
            ports[UInt16(index)] = PeerAddress(host: "127.0.0.1", port: try await network.start())
        }
        for network in networks { network.connect(to: ports) }
        // Frames sent before the connections exist wait in the bounded queues.
        for (index, network) in networks.enumerated() { network.broadcast(Frame(kind: .message, bytes: [UInt8(index)])) }
        let arrived = await inbox.wait { (0..<4).allSatisfy { inbox.count($0) == 3 } }
        #expect(arrived, "frames received: \((0..<4).map { inbox.count($0) })")
        for receiver in 0..<4 {
            let senders = inbox.frames.withLock { $0[receiver] ?? [] }
            #expect(Set(senders.map(\.0)) == Set((0..<4).filter { $0 != receiver }.map { UInt16($0) }))
            for (sender, payload) in senders { #expect(payload == [UInt8(sender)]) }
        }
        for network in networks { await network.shutdown() }
    }

    @Test func peersOutsideTheGenesisAuthoritiesOrClaimingAnotherValidatorAreRefused() async throws {
        let inbox = Inbox()
        // A genuine org1 node.
        let member = try network(1, inbox: inbox)
        // Validator 2's key, but a certificate from a CA no organisation named in the genesis.
        let outsider = try network(
            2, identity: try TLSIdentity.makeAuthority(organisation: "org2").issueNode(named: "node2"), inbox: inbox)
        // Validator 3's key with a genuine certificate of another organisation (org2).
        let impostor = try network(3, identity: try organisations[2].authority.issueNode(named: "node3"), inbox: inbox)
        var addresses: [UInt16: PeerAddress] = [:]
        for (index, peer) in [(1, member), (2, outsider), (3, impostor)] {
            addresses[UInt16(index)] = PeerAddress(host: "127.0.0.1", port: try await peer.start())
        }
        let dialer = try network(0, inbox: inbox)
        _ = try await dialer.start()
        dialer.connect(to: addresses)
        dialer.broadcast(Frame(kind: .message, bytes: [7]))
        #expect(await inbox.wait { inbox.count(1) == 1 })
        // A second round trip to the member: the other handshakes, started together, have
        // had the same time to run, and failed.
        dialer.broadcast(Frame(kind: .message, bytes: [8]))
        #expect(await inbox.wait { inbox.count(1) == 2 })
        #expect(inbox.count(2) == 0)
        #expect(inbox.count(3) == 0)
        #expect(dialer.connectedPeers == [1])
        for network in [member, outsider, impostor, dialer] { await network.shutdown() }
    }

    /// An epoch change moves the network: a validator of a new organisation (its CA
    /// unknown at first) is refused, then accepted once the set and trust roots name it;
    /// a validator removed from the set is disconnected and no longer sent to.
    @Test func membershipFollowsTheValidatorSet() async throws {
        let inbox = Inbox()
        let newcomer = Organisation(
            id: "org4", authority: try TLSIdentity.makeAuthority(organisation: "org4"),
            key: try PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: 5, count: 32)))
        let members = try (0..<4).map { try network($0, inbox: inbox) }
        var addresses: [PublicKey: PeerAddress] = [:]
        for (index, member) in members.enumerated() {
            addresses[organisations[index].key.publicKey] = PeerAddress(host: "127.0.0.1", port: try await member.start())
        }
        var genesisAuthorities = Dictionary(uniqueKeysWithValues: organisations.map { ($0.id, $0.authority.certificatePEM) })
        // The newcomer knows the epoch-0 set and its peers, and is not in it.
        let joining = try PeerNetwork(
            config: PeerNetworkConfig(
                chainId: "net-test", genesisHash: genesisHash, validators: validators, authorities: genesisAuthorities,
                validatorKey: newcomer.key, identity: try newcomer.authority.issueNode(named: "node4"),
                listen: PeerAddress(host: "127.0.0.1", port: 0),
                peers: Dictionary(uniqueKeysWithValues: (0..<4).map { (UInt16($0), addresses[organisations[$0].key.publicKey]!) }))
        ) { sender, frame in inbox.record(4, sender, frame) }
        addresses[newcomer.key.publicKey] = PeerAddress(host: "127.0.0.1", port: try await joining.start())
        for member in members { member.connect(to: Dictionary(uniqueKeysWithValues: (0..<4).map { (UInt16($0), addresses[organisations[$0].key.publicKey]!) })) }
        #expect(joining.me == nil)
        for (index, member) in members.enumerated() { member.broadcast(Frame(kind: .message, bytes: [UInt8(index)])) }
        joining.broadcast(Frame(kind: .message, bytes: [40]))
        #expect(await inbox.wait { (0..<4).allSatisfy { inbox.count($0) == 3 } })
        // A second round among the members: the newcomer's handshakes, started earlier, failed.
        members[0].broadcast(Frame(kind: .message, bytes: [1]))
        #expect(await inbox.wait { (1..<4).allSatisfy { inbox.count($0) == 4 } })
        #expect(inbox.frames.withLock { $0.values.joined().allSatisfy { $0.1 != [40] } }, "the newcomer is in no set yet")
        #expect(inbox.count(4) == 0)

        // Epoch 1: the newcomer joins (index 4) with its organisation's CA.
        let epoch1 = try ValidatorSet(
            epoch: 1, validators: validators.validators + [Validator(organisation: "org4", publicKey: newcomer.key.publicKey, power: 1)])
        genesisAuthorities["org4"] = newcomer.authority.certificatePEM
        for network in members + [joining] { try network.update(validators: epoch1, authorities: genesisAuthorities, addresses: addresses) }
        #expect(joining.me == 4)
        joining.send(Frame(kind: .message, bytes: [41]), to: 0)
        #expect(await inbox.wait { inbox.frames.withLock { $0[0]?.contains { $0.0 == 4 && $0.1 == [41] } ?? false } })

        // Epoch 2: validator 1 leaves; the others drop it and stop sending to it.
        let epoch2 = try ValidatorSet(epoch: 2, validators: epoch1.validators.enumerated().filter { $0.offset != 1 }.map(\.element))
        for (index, network) in (members + [joining]).enumerated() where index != 1 {
            try network.update(validators: epoch2, authorities: genesisAuthorities, addresses: addresses)
        }
        members[0].broadcast(Frame(kind: .message, bytes: [200]))
        #expect(await inbox.wait { [2, 3, 4].allSatisfy { receiver in inbox.frames.withLock { $0[receiver]?.contains { $0.1 == [200] } ?? false } } })
        #expect(inbox.frames.withLock { $0[1]?.contains { $0.1 == [200] } ?? false } == false, "a removed validator received a broadcast")
        #expect(!members[0].connectedPeers.contains(4), "epoch 2 has four validators")
        for network in members + [joining] { await network.shutdown() }
    }
}
