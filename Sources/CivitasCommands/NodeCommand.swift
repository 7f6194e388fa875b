import ArgumentParser
import CivitasAPI
import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasNetwork
import CivitasNode
import CivitasStorage
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Run a node.", subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a node in the foreground until SIGTERM or SIGINT.",
            discussion: "Reads HOME/node.json; writes HOME/node.pid and, once the API listens, HOME/api.addr.")

        @Option(help: "The node's home directory (holds node.json).")
        var home: String

        func run() async throws {
            let config = try NodeConfig.load(home: home)
            var logger = Logger(label: "civitas.node")
            logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info

            let genesis = try Genesis.load(from: URL(fileURLWithPath: resolve(config.genesis)))
            let validatorKey = try config.validatorKey.map { try KeyFile.load(resolve($0)) }
            try FileSystem.createDirectory(resolve(config.dataDirectory))
            let store = try RocksDBStore(path: resolve(config.dataDirectory)) { move in
                let into = move.into ?? "the families of their prefixes"
                if let moved = move.moved {
                    logger.info("moved \(moved) keys from column family \(move.from) into \(into)")
                } else {
                    logger.info("moving keys from column family \(move.from) into \(into) (a store of an earlier release; minutes on a large state)")
                }
            }
            // Runs last, whatever ends the node: RocksDB's threads still running when the
            // process exits would abort it, holding the directory's lock until they do.
            defer { store.close() }
            // Only an empty data directory (a new node, or one whose disk was lost) loads a snapshot.
            if config.stateSync, let validatorKey, try store.scan(prefix: [], start: nil, limit: 1).isEmpty {
                try await loadSnapshot(config: config, genesis: genesis, store: store, validatorKey: validatorKey, logger: logger)
            }

            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let node = try Node(genesis: genesis, store: store, validatorKey: validatorKey, limits: config.limits, logger: logger)
            let api = API(node: node, limits: config.apiLimits, metrics: registry)
            let peers = try await startNetwork(config: config, genesis: genesis, node: node, validatorKey: validatorKey, logger: logger)

            let serverLogger = logger
            let pidFile = home + "/node.pid"
            let addressFile = home + "/api.addr"
            try? FileManager.default.removeItem(atPath: addressFile)
            try FileSystem.write(Data("\(getpid())\n".utf8), to: pidFile)
            defer {
                try? FileManager.default.removeItem(atPath: pidFile)
                try? FileManager.default.removeItem(atPath: addressFile)
            }

            let app = Application(
                router: api.router(),
                configuration: .init(address: .hostname(config.apiHost, port: config.apiPort), serverName: "civitas"),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? config.apiPort
                    let address = "\(config.apiHost):\(port)"
                    try? FileSystem.write(Data((address + "\n").utf8), to: addressFile)
                    serverLogger.info("API listening on http://\(address)")
                },
                logger: logger)

            // Beside the server's own handling of the same signals: end the event streams,
            // so that its graceful shutdown is not left waiting on them.
            let stopSignals = [SIGTERM, SIGINT].map { number in
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { Task { await node.endSubscriptions() } }
                source.resume()
                return source
            }
            defer { for source in stopSignals { source.cancel() } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await node.run() }
                group.addTask { try await app.runService() }
                if let peers { group.addTask { await peers.deliver(to: node) } }
                // The API returns on SIGTERM/SIGINT; the node and its network then stop too.
                _ = try await group.next()
                group.cancelAll()
            }
            await peers?.network.shutdown()
            logger.info("node stopped")
        }

        /// Connects a validator to the others over mutual TLS. A lone validator listens
        /// too, so validators that governance adds can reach it.
        func startNetwork(
            config: NodeConfig, genesis: Genesis, node: Node, validatorKey: PrivateKey?, logger: Logger
        ) async throws -> PeerLink? {
            guard let validatorKey else {
                guard node.validators.validators.count == 1 else {
                    throw CommandError("\(home)/node.json names no validatorKey; nodes that do not vote cannot join the validators' network yet")
                }
                return nil
            }
            let identity = try identity(config)
            // Peers in node.json are numbered as in the genesis; governance records the
            // endpoints of validators it adds. The node may be in a later epoch already.
            let genesisValidators = try genesis.validatorSet().validators
            var addresses = NetworkTransport.addresses(node.membership.addresses)
            for peer in config.peers where peer.validator < genesisValidators.count {
                addresses[genesisValidators[peer.validator].publicKey] = PeerAddress(host: peer.host, port: peer.port)
            }
            let membership = node.membership
            let authorities = membership.authorities.merging(Self.authorities(of: genesis)) { current, _ in current }
            var peers: [UInt16: PeerAddress] = [:]
            for (key, address) in addresses {
                if let index = membership.validators.index(of: key) { peers[index] = address }
            }
            let link = try PeerLink(
                config: PeerNetworkConfig(
                    chainId: genesis.chainId, genesisHash: node.genesisHash, validators: membership.validators, authorities: authorities,
                    validatorKey: validatorKey, identity: identity, listen: PeerAddress(host: config.p2pHost, port: config.p2pPort),
                    peers: peers),
                logger: logger)
            let port = try await link.network.start()
            try FileSystem.write(Data("\(config.p2pHost):\(port)\n".utf8), to: home + "/p2p.addr")
            logger.info("validator network listening on \(config.p2pHost):\(port), \(peers.count) peers")
            await node.attach(NetworkTransport(network: link.network))
            return link
        }

        /// Fills the empty data directory from a peer's snapshot before the node opens it,
        /// on a network of its own that is shut down afterwards.
        func loadSnapshot(config: NodeConfig, genesis: Genesis, store: RocksDBStore, validatorKey: PrivateKey, logger: Logger) async throws {
            let sync = try SnapshotSync(genesis: genesis, store: store, validatorKey: validatorKey.publicKey, logger: logger)
            let (events, continuation) = AsyncStream<SnapshotEvent>.makeStream(bufferingPolicy: .bufferingNewest(1_024))
            let network = try PeerNetwork(
                config: PeerNetworkConfig(
                    chainId: genesis.chainId, genesisHash: genesis.hash(using: sync.hasher), validators: sync.validators,
                    authorities: Self.authorities(of: genesis), validatorKey: validatorKey, identity: try identity(config),
                    listen: PeerAddress(host: config.p2pHost, port: config.p2pPort),
                    peers: Dictionary(config.peers.map { (UInt16($0.validator), PeerAddress(host: $0.host, port: $0.port)) }, uniquingKeysWith: { $1 })),
                logger: logger
            ) { peer, frame in continuation.yield(.frame(peer, frame)) }
            _ = try await network.start()
            logger.info("loading the state from a peer's snapshot")
            let deadline = Task {
                try? await Task.sleep(for: .seconds(3_600))
                continuation.yield(.deadline)
            }
            defer { deadline.cancel() }
            func perform(_ effects: [ReplicaEffect]) {
                for effect in effects {
                    switch effect {
                    case .send(let message, let peer):
                        network.send(Frame(kind: .message, bytes: message.canonicalBytes), to: peer)
                    case .timer(let timer, let milliseconds):
                        Task {
                            try? await Task.sleep(for: .milliseconds(Int64(milliseconds)))
                            continuation.yield(.timer(timer))
                        }
                    default:
                        break
                    }
                }
            }
            perform(try sync.start(now: wallClockMilliseconds()))
            for await event in events {
                switch event {
                case .frame(let peer, let frame):
                    guard frame.kind == .message, let message = try? PeerMessage(canonicalBytes: frame.bytes) else { continue }
                    perform(try sync.receive(message, from: peer, now: wallClockMilliseconds()))
                case .timer(let timer):
                    perform(try sync.timerFired(timer, now: wallClockMilliseconds()))
                case .deadline:
                    await network.shutdown()
                    throw CommandError("no peer delivered a valid snapshot within an hour: \(sync.refusals.suffix(3).joined(separator: "; "))")
                }
                if sync.finished { break }
            }
            await network.shutdown()
        }

        /// Each genesis organisation's TLS CA certificate, by organisation id.
        static func authorities(of genesis: Genesis) -> [String: String] {
            var authorities: [String: String] = [:]
            for org in genesis.organisations { authorities[org.id] = org.tlsAuthority }
            return authorities
        }

        enum SnapshotEvent: Sendable {
            case frame(UInt16, Frame)
            case timer(ReplicaTimer)
            case deadline
        }

        func identity(_ config: NodeConfig) throws -> TLSIdentity {
            TLSIdentity(
                certificatePEM: String(decoding: try FileSystem.read(resolve(config.tlsCertificate)), as: UTF8.self),
                privateKeyPEM: String(decoding: try FileSystem.read(resolve(config.tlsKey)), as: UTF8.self))
        }

        func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : home + "/" + path
        }
    }
}

/// Peer messages travel as frames of the validators' network.
struct NetworkTransport: PeerTransport {
    let network: PeerNetwork

    func send(_ message: PeerMessage, to validator: UInt16) {
        network.send(Frame(kind: .message, bytes: message.canonicalBytes), to: validator)
    }

    func broadcast(_ message: PeerMessage) {
        network.broadcast(Frame(kind: .message, bytes: message.canonicalBytes))
    }

    func membershipChanged(_ membership: EpochMembership) {
        do {
            try network.update(
                validators: membership.validators, authorities: membership.authorities, addresses: Self.addresses(membership.addresses))
        } catch {
            network.logger.error("cannot move the network to epoch \(membership.validators.epoch): \(error)")
        }
    }

    /// Parses `host:port` endpoints; malformed ones (governance checks them) are skipped.
    static func addresses(_ text: [PublicKey: String]) -> [PublicKey: PeerAddress] {
        var addresses: [PublicKey: PeerAddress] = [:]
        for (key, endpoint) in text {
            guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]) else { continue }
            addresses[key] = PeerAddress(host: String(endpoint[..<colon]), port: port)
        }
        return addresses
    }
}

/// The network with the queue of what peers sent, delivered to the node in order of
/// arrival by one task. The queue is bounded: beyond it the newest frames are dropped,
/// which consensus and catch-up recover from, instead of growing without limit.
final class PeerLink: Sendable {
    let network: PeerNetwork
    let inbound: AsyncStream<(UInt16, Frame)>

    init(config: PeerNetworkConfig, logger: Logger) throws {
        let (stream, continuation) = AsyncStream<(UInt16, Frame)>.makeStream(bufferingPolicy: .bufferingOldest(20_000))
        inbound = stream
        network = try PeerNetwork(config: config, logger: logger) { peer, frame in continuation.yield((peer, frame)) }
    }

    func deliver(to node: Node) async {
        for await (peer, frame) in inbound {
            guard frame.kind == .message else { continue }
            let message: PeerMessage
            do { message = try PeerMessage(canonicalBytes: frame.bytes) } catch {
                node.logger.warning("validator \(peer) sent a malformed message: \(error)")
                continue
            }
            if case .transactions(let transactions) = message {
                await node.receiveGossip(transactions, from: peer)
            } else {
                await node.receive(message, from: peer)
            }
        }
    }
}
