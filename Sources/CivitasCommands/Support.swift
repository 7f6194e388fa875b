import ArgumentParser
import CivitasClient
import CivitasCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}

enum FileSystem {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Total size of the regular files under `path`, the node's and RocksDB's text logs aside.
    static func directoryBytes(_ path: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let file = walker.nextObject() as? String {
            // Text logs are not data; RocksDB's write-ahead log (`NNNNNN.log`) is: before
            // a flush it holds everything committed since the last one.
            let name = (file as NSString).lastPathComponent
            guard name != "node.log", !name.hasPrefix("LOG"),
                let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + file),
                attributes[.type] as? FileAttributeType == .typeRegular
            else { continue }
            total += (attributes[.size] as? NSNumber)?.intValue ?? 0
        }
        return total
    }

    static func createDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    static func read(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CommandError("cannot read \(path): \(error.localizedDescription)")
        }
    }

    static func write(_ data: Data, to path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw CommandError("cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// A private key file: created readable by its owner only, never overwritten.
    static func writeSecret(_ data: Data, to path: String) throws {
        guard !exists(path) else { throw CommandError("\(path) exists; refusing to overwrite a key") }
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CommandError("cannot write \(path)")
        }
    }
}

/// A failure the user must act on; printed as `error: …` with exit code 1.
struct CommandError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

enum Output {
    /// `snakeCase`: keys as `committed_tps`, for reports that other tools read.
    static func json(_ value: some Encodable, snakeCase: Bool = false) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if snakeCase { encoder.keyEncodingStrategy = .convertToSnakeCase }
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

/// A small HTTP client for the node API. Errors carry the API's error code.
struct NodeClient {
    let base: String

    private struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    struct APIFailure: Error, CustomStringConvertible {
        let status: Int
        let code: String
        let message: String
        var description: String { "\(code): \(message) (HTTP \(status))" }
    }

    func get<T: Decodable>(_ path: String, as type: T.Type = T.self) async throws -> T {
        try await send("GET", path, body: nil, contentType: nil)
    }

    func post<T: Decodable>(_ path: String, body: Data, contentType: String = "application/octet-stream", as type: T.Type = T.self)
        async throws -> T
    {
        try await send("POST", path, body: body, contentType: contentType)
    }

    private func send<T: Decodable>(_ method: String, _ path: String, body: Data?, contentType: String?) async throws -> T {
        guard let url = URL(string: base + path) else { throw CommandError("bad node URL \(base)") }
        var request = URLRequest(url: url, timeoutInterval: 60)
        request.httpMethod = method
        request.httpBody = body
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, response): (Data, URLResponse)
        do { (data, response) = try await URLSession.shared.data(for: request) } catch {
            throw CommandError("cannot reach node at \(base): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            if let failure = try? JSONDecoder().decode(ErrorBody.self, from: data) {
                throw APIFailure(status: status, code: failure.error.code, message: failure.error.message)
            }
            throw APIFailure(status: status, code: "http.\(status)", message: String(decoding: data.prefix(300), as: UTF8.self))
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw CommandError("unexpected response from \(path): \(JSONErrorText.describe(error))")
        }
    }
}
