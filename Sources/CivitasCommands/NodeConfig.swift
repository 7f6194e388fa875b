import CivitasAPI
import CivitasState
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
    /// Where other validators connect; 0 picks a free port (written to `p2p.addr`).
    public var p2pHost: String
    public var p2pPort: Int
    /// This node's TLS certificate and key (PEM), issued by its organisation's CA.
    public var tlsCertificate: String
    public var tlsKey: String
    /// The other validators' addresses, by validator index.
    public var peers: [Peer]
    /// With an empty data directory, start from a peer's snapshot of the state at its
    /// latest committed height (ADR 0005) instead of replaying the chain from block 1.
    public var stateSync: Bool

    public struct Peer: Codable, Sendable, Equatable {
        public var validator: Int
        public var host: String
        public var port: Int

        public init(validator: Int, host: String, port: Int) {
            self.validator = validator
            self.host = host
            self.port = port
        }
    }

    public init(
        genesis: String = "genesis.json", validatorKey: String? = "keys/validator.json", dataDirectory: String = "data",
        apiHost: String = "127.0.0.1", apiPort: Int = 7700, logLevel: String = "info", limits: NodeLimits = .init(),
        apiLimits: APILimits = .init(), p2pHost: String = "127.0.0.1", p2pPort: Int = 7800,
        tlsCertificate: String = "keys/tls-certificate.pem", tlsKey: String = "keys/tls-key.pem", peers: [Peer] = [],
        stateSync: Bool = false
    ) {
        self.stateSync = stateSync
        self.p2pHost = p2pHost
        self.p2pPort = p2pPort
        self.tlsCertificate = tlsCertificate
        self.tlsKey = tlsKey
        self.peers = peers
        self.genesis = genesis
        self.validatorKey = validatorKey
        self.dataDirectory = dataDirectory
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.logLevel = logLevel
        self.limits = limits
        self.apiLimits = apiLimits
    }

    public static let fileName = "node.json"

    /// Reads and checks a node config; every error names the file and the field.
    public static func load(home: String) throws -> NodeConfig {
        let path = home + "/" + fileName
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw NodeError(.config, "cannot read \(path): \(error.localizedDescription); run `civitas init` first")
        }
        let config = try decode(data, path: path)
        try config.validate(path: path)
        return config
    }

    /// A file need only name what it changes: its fields are laid over the defaults, at
    /// any depth, so configs written by an older version keep loading when fields are
    /// added. A key the config does not have is refused, so a typo is never ignored.
    /// `validatorKey` absent or null means the node does not vote.
    static func decode(_ data: Data, path: String) throws(NodeError) -> NodeConfig {
        func fail(_ message: String) -> NodeError { NodeError(.config, "\(path): \(message)") }
        var defaults = NodeConfig()
        defaults.validatorKey = nil
        do {
            guard let file = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw fail("expected a JSON object")
            }
            let base = try JSONSerialization.jsonObject(with: JSONEncoder().encode(defaults))
            let merged = try overlay(file, on: base, at: "", optional: ["validatorKey"])
            return try JSONDecoder().decode(NodeConfig.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let error as NodeError {
            throw error
        } catch let error as UnknownField {
            throw fail(error.message)
        } catch {
            throw fail(JSONErrorText.describe(error))
        }
    }

    private struct UnknownField: Error { var message: String }

    private static func overlay(_ file: Any, on base: Any, at field: String, optional: Set<String>) throws -> Any {
        guard let object = file as? [String: Any], var result = base as? [String: Any] else { return file }
        for (key, value) in object {
            let name = field.isEmpty ? key : field + "." + key
            if let existing = result[key] {
                result[key] = try overlay(value, on: existing, at: name, optional: [])
            } else if optional.contains(key) {
                result[key] = value
            } else {
                let known = (Array(result.keys) + optional).sorted().joined(separator: ", ")
                throw UnknownField(message: "unknown field \(name); known here: \(known)")
            }
        }
        return result
    }

    public func validate(path: String) throws {
        func fail(_ message: String) -> NodeError { NodeError(.config, "\(path): \(message)") }
        guard (0...65_535).contains(apiPort) else { throw fail("apiPort must be 0–65535, got \(apiPort)") }
        guard (0...65_535).contains(p2pPort) else { throw fail("p2pPort must be 0–65535, got \(p2pPort)") }
        for peer in peers {
            guard (0...65_535).contains(peer.port), !peer.host.isEmpty, (0..<256).contains(peer.validator) else {
                throw fail("peers: validator \(peer.validator) at \(peer.host):\(peer.port) is not a valid address")
            }
        }
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
        guard (1...1 << 20).contains(limits.stateCacheMebibytes) else {
            throw fail("limits.stateCacheMebibytes must be 1 to 1048576, got \(limits.stateCacheMebibytes)")
        }
        guard limits.stateHeightsKept == 0 || limits.stateHeightsKept >= Int(StatePruner.keptHeightsMin) else {
            throw fail(
                "limits.stateHeightsKept must be 0 (keep every state) or at least \(StatePruner.keptHeightsMin), got \(limits.stateHeightsKept)")
        }
        guard apiLimits.requestBytesMax >= 1_024, apiLimits.batchBytesMax >= apiLimits.requestBytesMax,
            apiLimits.batchTransactionsMax > 0, apiLimits.requestsPerSecondMax > 0,
            apiLimits.requestsPerSecondPerClient > 0, apiLimits.waitMillisecondsMax > 0
        else { throw fail("apiLimits values must be positive (requestBytesMax ≥ 1024, batchBytesMax ≥ requestBytesMax)") }
    }

    public func write(home: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.write(try encoder.encode(self), to: home + "/" + Self.fileName)
    }
}
