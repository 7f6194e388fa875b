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
    public let me: UInt16
    let logger: Logger
    let onFrame: @Sendable (UInt16, Frame) -> Void
    private let group: MultiThreadedEventLoopGroup
    private let serverContext: NIOSSLContext
    private let clientContext: NIOSSLContext
    private let state = Mutex(State())

    struct State {
        var channels: [UInt16: any Channel] = [:]
        var queues: [UInt16: Deque<Frame>] = [:]
        var dropped: [UInt16: Int] = [:]
        var server: (any Channel)?
        var closed = false
    }

    public init(
        config: PeerNetworkConfig, threads: Int = 1, logger: Logger = Logger(label: "civitas.network"),
        onFrame: @escaping @Sendable (UInt16, Frame) -> Void
    ) throws {
        guard let me = config.validators.index(of: config.validatorKey.publicKey) else {
            throw NetworkError(.notAValidator, "the node's key is not a validator of this chain")
        }
        self.config = config
        self.me = me
        self.logger = logger
        self.onFrame = onFrame
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(config.identity.certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
            let key = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(bytes: Array(config.identity.privateKeyPEM.utf8), format: .pem))
            let roots = try config.authorities.values.sorted().map { try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem) }
            var server = TLSConfiguration.makeServerConfigurationWithMTLS(certificateChain: chain, privateKey: key, trustRoots: .certificates(roots))
            server.minimumTLSVersion = .tlsv13
            var client = TLSConfiguration.makeClientConfiguration()
            client.certificateChain = chain
            client.privateKey = key
            client.trustRoots = .certificates(roots)
            client.certificateVerification = .noHostnameVerification
            client.minimumTLSVersion = .tlsv13
            serverContext = try NIOSSLContext(configuration: server)
            clientContext = try NIOSSLContext(configuration: client)
        } catch {
            try? group.syncShutdownGracefully()
            throw NetworkError(.badConfiguration, "TLS identity or authorities: \(error)")
        }
    }

    /// Binds the listening socket and starts dialing; returns the bound port.
    public func start() async throws -> Int {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
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
        connect(to: config.peers)
        return server.localAddress?.port ?? config.listen.port
    }

    /// Dials the peers this node is responsible for (those with a higher index).
    public func connect(to peers: [UInt16: PeerAddress]) {
        for (peer, address) in peers.sorted(by: { $0.key < $1.key }) where peer > me {
            Task { await dial(peer, at: address) }
        }
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

    public var connectedPeers: [UInt16] { state.withLock { Array($0.channels.keys).sorted() } }

    public func droppedFrames(to peer: UInt16) -> Int { state.withLock { $0.dropped[peer] ?? 0 } }

    // MARK: Sending

    public func send(_ frame: Frame, to peer: UInt16) {
        guard peer != me, Int(peer) < config.validators.validators.count else { return }
        let channel = state.withLock { state -> (any Channel)? in
            guard !state.closed else { return nil }
            var queue = state.queues[peer] ?? []
            if queue.count >= config.outboundFramesMax {
                queue.removeFirst()
                state.dropped[peer, default: 0] += 1
            }
            queue.append(frame)
            state.queues[peer] = queue
            return state.channels[peer]
        }
        if let channel { flush(peer, on: channel) }
    }

    public func broadcast(_ frame: Frame) {
        for peer in 0..<UInt16(config.validators.validators.count) where peer != me { send(frame, to: peer) }
    }

    /// Writes queued frames while the connection accepts them; the rest wait for
    /// writability (NIO's watermarks) instead of piling up in NIO's own buffer.
    func flush(_ peer: UInt16, on channel: any Channel) {
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

    private func dial(_ peer: UInt16, at address: PeerAddress) async {
        var backoff: UInt64 = 100
        while !state.withLock({ $0.closed }) {
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connectTimeout(.seconds(5))
                    .channelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: clientContext, serverHostname: nil))
                            try addFrameHandlers(channel)
                        }
                    }
                    .connect(host: address.host, port: address.port).get()
                backoff = 100
                try? await channel.closeFuture.get()
            } catch {
                logger.debug("dial validator \(peer) at \(address.host):\(address.port): \(error)")
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
        var writer = CanonicalWriter()
        writer.string(config.chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.hash(config.genesisHash)
        writer.u16(me)
        writer.encode(try config.validatorKey.sign(Self.helloMessage(genesisHash: config.genesisHash, validator: me, fingerprint: fingerprint)))
        return Frame(kind: .hello, bytes: writer.bytes)
    }

    static func helloMessage(genesisHash: Hash, validator: UInt16, fingerprint: [UInt8]) -> [UInt8] {
        var writer = CanonicalWriter()
        writer.fixed(Array("civitas.hello".utf8) + [0])
        writer.hash(genesisHash)
        writer.u16(validator)
        writer.fixed(fingerprint)
        return writer.bytes
    }

    /// Checks a peer's hello against its TLS certificate; returns the validator it is.
    func verifyHello(_ frame: Frame, certificate: PeerCertificate) throws(NetworkError) -> UInt16 {
        var reader = CanonicalReader(frame.bytes)
        let chainId: String
        let genesisHash: Hash
        let validator: UInt16
        let signature: Signature
        do {
            chainId = try reader.string("chain id", max: ProtocolLimits.chainIdBytesMax)
            genesisHash = try reader.hash("genesis hash")
            validator = try reader.u16("validator index")
            signature = try reader.decode(Signature.self)
            try reader.finish()
        } catch {
            throw NetworkError(.handshake, "malformed hello: \(error)")
        }
        guard chainId == config.chainId, genesisHash == config.genesisHash else {
            throw NetworkError(.handshake, "peer is on chain \(chainId) with another genesis")
        }
        guard Int(validator) < config.validators.validators.count, validator != me else {
            throw NetworkError(.handshake, "peer claims validator index \(validator)")
        }
        let entry = config.validators.validators[Int(validator)]
        let message = Self.helloMessage(genesisHash: genesisHash, validator: validator, fingerprint: certificate.fingerprint)
        guard SignatureVerifiers().isValid(signature, of: message, by: entry.publicKey) else {
            throw NetworkError(.handshake, "hello of validator \(validator) is not signed by its key over this certificate")
        }
        guard let authority = config.authorities[entry.organisation], certificate.isIssued(by: authority) else {
            throw NetworkError(.handshake, "certificate of validator \(validator) is not issued by \(entry.organisation)'s CA")
        }
        return validator
    }

    func register(_ channel: any Channel, as peer: UInt16) {
        let previous = state.withLock { state -> (any Channel)? in
            let previous = state.channels[peer]
            state.channels[peer] = channel
            return previous
        }
        if let previous, previous !== channel { previous.close(promise: nil) }
        logger.info("connected to validator \(peer)")
        flush(peer, on: channel)
    }

    func unregister(_ channel: any Channel, peer: UInt16) {
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
    var peer: UInt16?

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
            network.onFrame(peer, frame)
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
