import CivitasAPI
import CivitasCore
import CivitasNode
import Foundation
import Logging

/// `node.json` in a node's home. Paths are relative to the home directory.
public struct NodeConfig: Codable, Sendable, Equatable {
    public var genesis: String
    public var validatorKey: String?
    public var dataDirectory: String
    public var apiHost: String
    /// 0 picks a free port; the node then writes the address it bound to `api.addr`.
    public var apiPort: Int
    public var logLevel: String
    public var limits: NodeLimits
    public var apiLimits: APILimits

    public init(
        genesis: String = "genesis.json", validatorKey: String? = "keys/validator.json", dataDirectory: String = "data",
        apiHost: String = "127.0.0.1", apiPort: Int = 7700, logLevel: String = "info", limits: NodeLimits = .init(),
        apiLimits: APILimits = .init()
    ) {
        self.genesis = genesis
        self.validatorKey = validatorKey
        self.dataDirectory = dataDirectory
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.logLevel = logLevel
        self.limits = limits
        self.apiLimits = apiLimits
    }

    enum CodingKeys: String, CodingKey {
        case genesis, validatorKey, dataDirectory, apiHost, apiPort, logLevel, limits, apiLimits
    }

    public init(from decoder: any Decoder) throws {
        let defaults = NodeConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        genesis = try c.decodeIfPresent(String.self, forKey: .genesis) ?? defaults.genesis
        validatorKey = try c.decodeIfPresent(String.self, forKey: .validatorKey)
        dataDirectory = try c.decodeIfPresent(String.self, forKey: .dataDirectory) ?? defaults.dataDirectory
        apiHost = try c.decodeIfPresent(String.self, forKey: .apiHost) ?? defaults.apiHost
        apiPort = try c.decodeIfPresent(Int.self, forKey: .apiPort) ?? defaults.apiPort
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? defaults.logLevel
        limits = try c.decodeIfPresent(NodeLimits.self, forKey: .limits) ?? defaults.limits
        apiLimits = try c.decodeIfPresent(APILimits.self, forKey: .apiLimits) ?? defaults.apiLimits
    }

    public static let fileName = "node.json"

    /// Reads and checks a node config; every error names the file and the field.
    public static func load(home: String) throws -> NodeConfig {
        let path = home + "/" + fileName
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw NodeError(.config, "cannot read \(path): \(error.localizedDescription); run `civitas init` first")
        }
        let config: NodeConfig
        do { config = try JSONDecoder().decode(NodeConfig.self, from: data) } catch {
            throw NodeError(.config, "\(path): \(JSONErrorText.describe(error))")
        }
        try config.validate(path: path)
        return config
    }

    public func validate(path: String) throws {
        func fail(_ message: String) -> NodeError { NodeError(.config, "\(path): \(message)") }
        guard (0...65_535).contains(apiPort) else { throw fail("apiPort must be 0–65535, got \(apiPort)") }
        guard !apiHost.isEmpty else { throw fail("apiHost is empty") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw fail("logLevel must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel)")
        }
        guard limits.mempool.transactionsMax > 0, limits.mempool.bytesMax > 0, limits.mempool.senderTransactionsMax > 0 else {
            throw fail("limits.mempool values must be positive")
        }
        guard limits.waitersMax > 0, limits.subscribersMax > 0, limits.eventBufferMax > 0 else {
            throw fail("limits values must be positive")
        }
        guard apiLimits.requestBytesMax >= 1_024, apiLimits.batchBytesMax >= apiLimits.requestBytesMax,
            apiLimits.batchTransactionsMax > 0, apiLimits.requestsPerSecondMax > 0, apiLimits.waitMillisecondsMax > 0
        else { throw fail("apiLimits values must be positive (requestBytesMax ≥ 1024, batchBytesMax ≥ requestBytesMax)") }
    }

    public func write(home: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.write(try encoder.encode(self), to: home + "/" + Self.fileName)
    }
}
