import ArgumentParser
import CivitasAPI
import CivitasClient
import CivitasCore
import CivitasCrypto
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
            let store = try RocksDBStore(path: resolve(config.dataDirectory))

            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let node = try Node(genesis: genesis, store: store, validatorKey: validatorKey, limits: config.limits, logger: logger)
            let api = API(node: node, limits: config.apiLimits, metrics: registry)

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

            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await node.run() }
                group.addTask { try await app.runService() }
                // The API returns on SIGTERM/SIGINT; block production then stops too.
                _ = try await group.next()
                group.cancelAll()
            }
            logger.info("node stopped")
        }

        func resolve(_ path: String) -> String {
            path.hasPrefix("/") ? path : home + "/" + path
        }
    }
}
