import CivitasCore
import CivitasCrypto
import DequeModule
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

public struct PeerAddress: Sendable, Hashable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

public struct PeerNetworkConfig: Sendable {
    public var chainId: String
    public var genesisHash: Hash
    public var validators: ValidatorSet
    /// Each organisation's CA certificate (PEM), from the genesis.
    public var authorities: [String: String]
    public var validatorKey: PrivateKey
    public var identity: TLSIdentity
    public var listen: PeerAddress
    public var peers: [UInt16: PeerAddress]
    public var maxFrameBytes: Int
    /// Frames kept for a peer that is slow or away; beyond it the oldest are dropped
    /// (consensus and catch-up recover lost messages), so one peer cannot hold memory.
    public var outboundFramesMax: Int

    public init(
        chainId: String, genesisHash: Hash, validators: ValidatorSet, authorities: [String: String], validatorKey: PrivateKey,
        identity: TLSIdentity, listen: PeerAddress, peers: [UInt16: PeerAddress], maxFrameBytes: Int = Frame.defaultMaxBytes,
        outboundFramesMax: Int = 4_096
    ) {
        self.chainId = chainId
        self.genesisHash = genesisHash
        self.validators = validators
        self.authorities = authorities
        self.validatorKey = validatorKey
        self.identity = identity
        self.listen = listen
        self.peers = peers
        self.maxFrameBytes = maxFrameBytes
        self.outboundFramesMax = outboundFramesMax
    }
}

public struct NetworkError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notAValidator = "network.not_a_validator"
        case badConfiguration = "network.bad_configuration"
        case handshake = "network.handshake"
    }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// The validators' network: TCP with mutual TLS, where each node presents a certificate
/// issued by its organisation's CA (named in the genesis) and then proves, with its
/// validator key, which validator it is. The lower-indexed validator of each pair dials
/// the higher one and redials with backoff; frames are bounded; each peer has a bounded
/// outbound queue so that a slow peer costs dropped frames, never a stalled node.
public final class PeerNetwork: Sendable {
    public let config: PeerNetworkConfig
    public let logger: Logger
    let onFrame: @Sendable (UInt16, Frame) -> Void
    private let group: MultiThreadedEventLoopGroup
    private let state: Mutex<State>

    /// Who the validators are in the node's current epoch, and how to reach and trust them.
    struct Membership {
        var validators: ValidatorSet
        var authorities: [String: String]
        var addresses: [PublicKey: PeerAddress]
        var serverContext: NIOSSLContext
        var clientContext: NIOSSLContext
    }

    /// Connections and queues are per validator key: indexes change with the epoch.
    struct State {
        var membership: Membership
        var channels: [PublicKey: any Channel] = [:]
        var queues: [PublicKey: Deque<Frame>] = [:]
        var dropped: [PublicKey: Int] = [:]
        var dialing: Set<PublicKey> = []
        var server: (any Channel)?
        var closed = false
    }

    /// A node whose key is in no epoch's set yet (a validator that governance is about
    /// to add) runs too: it dials the validators it knows and follows the chain.
    public init(
        config: PeerNetworkConfig, threads: Int = 1, logger: Logger = Logger(label: "civitas.network"),
        onFrame: @escaping @Sendable (UInt16, Frame) -> Void
    ) throws {
        self.config = config
        self.logger = logger
        self.onFrame = onFrame
        var addresses: [PublicKey: PeerAddress] = [:]
        for (index, address) in config.peers where Int(index) < config.validators.validators.count {
            addresses[config.validators.validators[Int(index)].publicKey] = address
        }
        let membership = try Self.membership(
            validators: config.validators, authorities: config.authorities, addresses: addresses, identity: config.identity)
        state = Mutex(State(membership: membership))
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    private static func membership(
        validators: ValidatorSet, authorities: [String: String], addresses: [PublicKey: PeerAddress], identity: TLSIdentity
    ) throws(NetworkError) -> Membership {
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(identity.certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
            let key = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(bytes: Array(identity.privateKeyPEM.utf8), format: .pem))
            let roots = try authorities.values.sorted().map { try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem) }
            var server = TLSConfiguration.makeServerConfigurationWithMTLS(certificateChain: chain, privateKey: key, trustRoots: .certificates(roots))
            server.minimumTLSVersion = .tlsv13
            var client = TLSConfiguration.makeClientConfiguration()
            client.certificateChain = chain
            client.privateKey = key
            client.trustRoots = .certificates(roots)
            client.certificateVerification = .noHostnameVerification
            client.minimumTLSVersion = .tlsv13
            return Membership(
                validators: validators, authorities: authorities, addresses: addresses,
                serverContext: try NIOSSLContext(configuration: server), clientContext: try NIOSSLContext(configuration: client))
        } catch {
            throw NetworkError(.badConfiguration, "TLS identity or authorities: \(error)")
        }
    }

    /// This node's index in the current set; nil while it is not a validator.
    public var me: UInt16? { state.withLock { $0.membership.validators.index(of: config.validatorKey.publicKey) } }

    /// Moves to a new epoch's validators: trust follows the organisations' CAs, peers no
    /// longer in the set are disconnected, new ones dialed. `addresses` add to (and
    /// override) the endpoints known so far.
    public func update(validators: ValidatorSet, authorities: [String: String], addresses: [PublicKey: PeerAddress]) throws {
        let (dropped, dial) = try state.withLock { state throws -> ([any Channel], [(PublicKey, PeerAddress)]) in
            var known = state.membership.addresses
            known.merge(addresses) { $1 }
            state.membership = try Self.membership(
                validators: validators, authorities: authorities, addresses: known, identity: config.identity)
            let members = Set(validators.validators.map(\.publicKey))
            let dropped = state.channels.filter { !members.contains($0.key) }
            for key in dropped.keys {
                state.channels[key] = nil
                state.queues[key] = nil
            }
            return (Array(dropped.values), state.closed ? [] : dialTargets(&state))
        }
        for channel in dropped { channel.close(promise: nil) }
        for (key, address) in dial { Task { await self.dial(key, at: address) } }
    }

    /// Binds the listening socket and starts dialing; returns the bound port.
    public func start() async throws -> Int {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                let context = state.withLock { $0.membership.serverContext }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try addFrameHandlers(channel)
                }
            }
            .bind(host: config.listen.host, port: config.listen.port).get()
        let refused = state.withLock { state -> Bool in
            guard !state.closed else { return true }
            state.server = server
            return false
        }
        if refused {
            try? await server.close()
            throw NetworkError(.badConfiguration, "network already shut down")
        }
        startDialing()
        return server.localAddress?.port ?? config.listen.port
    }

    /// Adds endpoints of validators of the current set (by index) and dials those this
    /// node is responsible for.
    public func connect(to peers: [UInt16: PeerAddress]) {
        state.withLock { state in
            for (index, address) in peers where Int(index) < state.membership.validators.validators.count {
                state.membership.addresses[state.membership.validators.validators[Int(index)].publicKey] = address
            }
        }
        startDialing()
    }

    private func startDialing() {
        let targets = state.withLock { state in state.closed ? [] : dialTargets(&state) }
        for (key, address) in targets { Task { await dial(key, at: address) } }
    }

    /// The lower index of each pair dials the higher; a node outside the set dials all
    /// it knows. Marks the targets as being dialed.
    private func dialTargets(_ state: inout State) -> [(PublicKey, PeerAddress)] {
        var targets: [(PublicKey, PeerAddress)] = []
        for validator in state.membership.validators.validators where shouldDial(validator.publicKey, state) {
            guard let address = state.membership.addresses[validator.publicKey], !state.dialing.contains(validator.publicKey) else { continue }
            state.dialing.insert(validator.publicKey)
            targets.append((validator.publicKey, address))
        }
        return targets
    }

    private func shouldDial(_ key: PublicKey, _ state: State) -> Bool {
        let validators = state.membership.validators
        guard key != config.validatorKey.publicKey, let peer = validators.index(of: key) else { return false }
        guard let me = validators.index(of: config.validatorKey.publicKey) else { return true }
        return peer > me
    }

    public func shutdown() async {
        let channels = state.withLock { state -> [any Channel] in
            state.closed = true
            let all = Array(state.channels.values) + (state.server.map { [$0] } ?? [])
            state.channels = [:]
            state.server = nil
            return all
        }
        for channel in channels { try? await channel.close() }
        try? await group.shutdownGracefully()
    }

    /// Indexes (in the current set) of the validators connected now.
    public var connectedPeers: [UInt16] {
        state.withLock { state in state.channels.keys.compactMap { state.membership.validators.index(of: $0) }.sorted() }
    }

    public func droppedFrames(to peer: UInt16) -> Int {
        state.withLock { state in
            guard Int(peer) < state.membership.validators.validators.count else { return 0 }
            return state.dropped[state.membership.validators.validators[Int(peer)].publicKey] ?? 0
        }
    }

    // MARK: Sending

    public func send(_ frame: Frame, to peer: UInt16) {
        let target = state.withLock { state -> (PublicKey, (any Channel)?)? in
            let validators = state.membership.validators.validators
            guard !state.closed, Int(peer) < validators.count else { return nil }
            let key = validators[Int(peer)].publicKey
            guard key != config.validatorKey.publicKey else { return nil }
            enqueue(frame, for: key, &state)
            return (key, state.channels[key])
        }
        if let (key, channel) = target, let channel { flush(key, on: channel) }
    }

    public func broadcast(_ frame: Frame) {
        let targets = state.withLock { state -> [(PublicKey, any Channel)] in
            guard !state.closed else { return [] }
            var targets: [(PublicKey, any Channel)] = []
            for validator in state.membership.validators.validators where validator.publicKey != config.validatorKey.publicKey {
                enqueue(frame, for: validator.publicKey, &state)
                if let channel = state.channels[validator.publicKey] { targets.append((validator.publicKey, channel)) }
            }
            return targets
        }
        for (key, channel) in targets { flush(key, on: channel) }
    }

    private func enqueue(_ frame: Frame, for key: PublicKey, _ state: inout State) {
        var queue = state.queues[key] ?? []
        if queue.count >= config.outboundFramesMax {
            queue.removeFirst()
            state.dropped[key, default: 0] += 1
        }
        queue.append(frame)
        state.queues[key] = queue
    }

    /// Delivers a frame from the peer with `key`, named by its index in the current set;
    /// dropped if the peer left the set.
    func received(_ frame: Frame, from key: PublicKey) {
        guard let index = state.withLock({ $0.membership.validators.index(of: key) }) else { return }
        onFrame(index, frame)
    }

    /// Writes queued frames while the connection accepts them; the rest wait for
    /// writability (NIO's watermarks) instead of piling up in NIO's own buffer.
    func flush(_ peer: PublicKey, on channel: any Channel) {
        channel.eventLoop.execute { [self] in
            guard channel.isActive else { return }
            var wrote = false
            while channel.isWritable {
                let next = state.withLock { state -> Frame? in
                    guard state.channels[peer] === channel else { return nil }
                    return state.queues[peer]?.popFirst()
                }
                guard let next else { break }
                channel.write(next, promise: nil)
                wrote = true
            }
            if wrote { channel.flush() }
        }
    }

    // MARK: Connections

    /// Keeps a connection to `peer` while this node should dial it, redialing with backoff.
    private func dial(_ peer: PublicKey, at address: PeerAddress) async {
        var backoff: UInt64 = 100
        defer { _ = state.withLock { $0.dialing.remove(peer) } }
        while let context = state.withLock({ state in
            !state.closed && shouldDial(peer, state) ? state.membership.clientContext : nil
        }) {
            let address = state.withLock { $0.membership.addresses[peer] } ?? address
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connectTimeout(.seconds(5))
                    .channelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                            try addFrameHandlers(channel)
                        }
                    }
                    .connect(host: address.host, port: address.port).get()
                backoff = 100
                try? await channel.closeFuture.get()
            } catch {
                logger.debug("dial \(peer) at \(address.host):\(address.port): \(error)")
            }
            try? await Task.sleep(for: .milliseconds(Int64(backoff)))
            backoff = min(backoff * 2, 5_000)
        }
    }

    private func addFrameHandlers(_ channel: any Channel) throws {
        let operations = channel.pipeline.syncOperations
        try operations.addHandler(ByteToMessageHandler(FrameDecoder(maxBytes: config.maxFrameBytes)))
        try operations.addHandler(MessageToByteHandler(FrameEncoder()))
        try operations.addHandler(PeerHandler(network: self))
    }

    /// The hello a node sends first: the chain it is on and which validator it is, signed
    /// with the validator key over the fingerprint of its own TLS certificate, so the
    /// statement cannot be replayed over another certificate.
    func hello() throws -> Frame {
        let certificate = try NIOSSLCertificate.fromPEMBytes(Array(config.identity.certificatePEM.utf8))[0]
        let fingerprint = try PeerCertificate(der: try certificate.toDERBytes()).fingerprint
        let key = config.validatorKey.publicKey
        var writer = CanonicalWriter()
        writer.string(config.chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.hash(config.genesisHash)
        writer.encode(key)
        writer.encode(try config.validatorKey.sign(Self.helloMessage(genesisHash: config.genesisHash, key: key, fingerprint: fingerprint)))
        return Frame(kind: .hello, bytes: writer.bytes)
    }

    static func helloMessage(genesisHash: Hash, key: PublicKey, fingerprint: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.fixed(Array("civitas.hello".utf8) + [0])
        writer.hash(genesisHash)
        writer.encode(key)
        writer.fixed(fingerprint)
        return writer.bytes
    }

    /// Checks a peer's hello against its TLS certificate; returns the validator key it
    /// proved, which must be in the current set.
    func verifyHello(_ frame: Frame, certificate: PeerCertificate) throws(NetworkError) -> PublicKey {
        var reader = CanonicalReader(frame.bytes)
        let chainId: String
        let genesisHash: Hash
        let key: PublicKey
        let signature: Signature
        do {
            chainId = try reader.string("chain id", max: ProtocolLimits.chainIdBytesMax)
            genesisHash = try reader.hash("genesis hash")
            key = try reader.decode(PublicKey.self)
            signature = try reader.decode(Signature.self)
            try reader.finish()
        } catch {
            throw NetworkError(.handshake, "malformed hello: \(error)")
        }
        guard chainId == config.chainId, genesisHash == config.genesisHash else {
            throw NetworkError(.handshake, "peer is on chain \(chainId) with another genesis")
        }
        let membership = state.withLock { ($0.membership.validators, $0.membership.authorities) }
        guard key != config.validatorKey.publicKey, let index = membership.0.index(of: key) else {
            throw NetworkError(.handshake, "peer \(key) is not a validator of epoch \(membership.0.epoch)")
        }
        let entry = membership.0.validators[Int(index)]
        let message = Self.helloMessage(genesisHash: genesisHash, key: key, fingerprint: certificate.fingerprint)
        guard SignatureVerifiers().isValid(signature, of: message, by: key) else {
            throw NetworkError(.handshake, "hello of validator \(index) is not signed by its key over this certificate")
        }
        guard let authority = membership.1[entry.organisation], certificate.isIssued(by: authority) else {
            throw NetworkError(.handshake, "certificate of validator \(index) is not issued by \(entry.organisation)'s CA")
        }
        return key
    }

    func register(_ channel: any Channel, as peer: PublicKey) {
        // Two nodes in different epochs may both dial; the newer connection serves and
        // the older one stays open until its side closes it, so neither side flaps.
        state.withLock { $0.channels[peer] = channel }
        logger.info("connected to validator \(peer)")
        flush(peer, on: channel)
    }

    func unregister(_ channel: any Channel, peer: PublicKey) {
        state.withLock { state in
            if state.channels[peer] === channel { state.channels[peer] = nil }
        }
    }
}

/// Runs the hello exchange, then hands frames to the network's receiver.
final class PeerHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    let network: PeerNetwork
    var peer: PublicKey?

    init(network: PeerNetwork) { self.network = network }

    func channelActive(context: ChannelHandlerContext) {
        do { context.writeAndFlush(wrapOutboundOut(try network.hello()), promise: nil) } catch {
            network.logger.error("cannot build hello: \(error)")
            context.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let peer {
            guard frame.kind != .hello else { return }
            network.received(frame, from: peer)
            return
        }
        do {
            guard frame.kind == .hello else { throw NetworkError(.handshake, "first frame is not a hello") }
            let ssl = try context.pipeline.syncOperations.handler(type: NIOSSLHandler.self)
            guard let certificate = ssl.peerCertificate else { throw NetworkError(.handshake, "peer presented no certificate") }
            let verified = try network.verifyHello(frame, certificate: PeerCertificate(der: certificate.toDERBytes()))
            peer = verified
            network.register(context.channel, as: verified)
        } catch {
            network.logger.warning("refused peer \(context.remoteAddress.map { "\($0)" } ?? "?"): \(error)")
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let peer, context.channel.isWritable { network.flush(peer, on: context.channel) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let peer { network.unregister(context.channel, peer: peer) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        network.logger.debug("peer connection error: \(error)")
        context.close(promise: nil)
    }
}
