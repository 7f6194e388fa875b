import CivitasCore
import CivitasCrypto
import Foundation

/// A private key on disk: JSON with the scheme, the raw private key in hex, and (for
/// people) the public key and address. Written with mode 0600.
public struct KeyFile: Codable, Sendable {
    public var scheme: String
    public var privateKey: String
    public var publicKey: String
    public var address: String

    public init(_ key: PrivateKey, hasher: some CivitasCore.HashFunction) {
        scheme = key.scheme.name
        privateKey = key.rawRepresentation.hexString
        publicKey = key.publicKey.description
        address = Address(of: key.publicKey, using: hasher).description
    }

    public func privateKeyValue() throws -> PrivateKey {
        guard let scheme = SignatureScheme(name: scheme) else {
            throw ClientError("unknown scheme \(scheme) in key file; known: ed25519, p256, sm2, mldsa65")
        }
        guard let raw = [UInt8](hex: privateKey) else { throw ClientError("privateKey in key file is not hex") }
        let key = try PrivateKey(scheme: scheme, rawRepresentation: raw)
        guard key.publicKey.description == publicKey else {
            throw ClientError("key file's publicKey does not match its privateKey")
        }
        return key
    }

    public static func load(_ path: String) throws -> PrivateKey {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ClientError("cannot read key file \(path): \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(KeyFile.self, from: data).privateKeyValue() } catch let error as ClientError {
            throw ClientError("\(path): \(error.message)")
        } catch {
            throw ClientError("\(path) is not a key file: \(JSONErrorText.describe(error))")
        }
    }

    /// Writes the key, refusing to overwrite an existing file (a lost key is a lost identity).
    public func write(to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ClientError("\(path) exists; refusing to overwrite a key")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw ClientError("cannot create \(path)")
        }
    }
}

public struct ClientError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
