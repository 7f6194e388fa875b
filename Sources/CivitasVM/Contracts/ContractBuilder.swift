import CivitasCore
import Foundation

/// Builds a contract directory into a `.wasm` file with the toolchain that builds the
/// node: Swift sources as Embedded Swift together with the SDK, or C sources with the
/// SDK's header, both linked with the SDK's small C runtime by `wasm-ld`. The result is
/// checked as a deploy would check it, so a module that builds is one the chain takes.
public struct ContractBuilder {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Output: Sendable {
        public let path: String
        public let bytes: Int
        public let codeHash: Hash
    }

    public let sdk: String

    public init(sdk: String) { self.sdk = sdk }

    /// The SDK beside `start` or one of its parents (`contracts/sdk`), or beside the
    /// running executable's checkout, or `$CIVITAS_SDK`.
    public static func locateSDK(from start: String) -> String? {
        if let configured = ProcessInfo.processInfo.environment["CIVITAS_SDK"] { return configured }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        for origin in [start, FileManager.default.currentDirectoryPath, executable] {
            var directory = URL(fileURLWithPath: origin).standardizedFileURL
            for _ in 0..<12 {
                for candidate in ["sdk", "contracts/sdk"] {
                    let path = directory.appendingPathComponent(candidate).path
                    if FileManager.default.fileExists(atPath: path + "/Civitas.swift") { return path }
                }
                let parent = directory.deletingLastPathComponent()
                if parent == directory { break }
                directory = parent
            }
        }
        return nil
    }

    /// Builds `directory` into `output` (default: `<directory>/<name>.wasm`).
    public func build(_ directory: String, output: String? = nil, hasher: some HashFunction) throws -> Output {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let swiftSources = files.filter { $0.hasSuffix(".swift") }.map { directory + "/" + $0 }
        let cSources = files.filter { $0.hasSuffix(".c") }.map { directory + "/" + $0 }
        guard !swiftSources.isEmpty || !cSources.isEmpty else {
            throw Failure("no .swift or .c sources in \(directory)")
        }
        let name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        let output = output ?? directory + "/" + name + ".wasm"
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("civitas-contract-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        let tools = try Toolchain.find()
        var objects: [String] = []
        if !swiftSources.isEmpty {
            let object = work + "/contract.o"
            try run(
                tools.swiftc,
                [
                    "-target", "wasm32-unknown-none-wasm", "-enable-experimental-feature", "Embedded",
                    "-import-bridging-header", sdk + "/civitas.h", "-wmo", "-parse-as-library", "-Osize",
                    "-Xfrontend", "-disable-stack-protector", "-module-name", "Contract", "-c",
                    sdk + "/Civitas.swift",
                ] + swiftSources + ["-o", object])
            objects.append(object)
        }
        for (index, source) in cSources.enumerated() {
            let object = work + "/c\(index).o"
            try run(tools.clang, ["--target=wasm32-unknown-unknown", "-O2", "-mbulk-memory", "-I", sdk, "-c", source, "-o", object])
            objects.append(object)
        }
        let runtime = work + "/runtime.o"
        try run(tools.clang, ["--target=wasm32-unknown-unknown", "-O2", "-mbulk-memory", "-c", sdk + "/runtime.c", "-o", runtime])
        objects.append(runtime)
        // No --allow-undefined: a symbol the host does not give fails here, not at deploy.
        try run(tools.wasmLd, ["--no-entry", "--strip-all", "--gc-sections"] + objects + ["-o", output])

        let code = Array(try Data(contentsOf: URL(fileURLWithPath: output)))
        do { try ContractValidator.validate(code) } catch {
            throw Failure("built \(output), but the chain would refuse it: \(error)")
        }
        return Output(path: output, bytes: code.count, codeHash: hasher.hash(.contractCode, code))
    }

    private func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("civitas-build-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw Failure("\(URL(fileURLWithPath: tool).lastPathComponent) failed:\n\(text.suffix(4_000))")
        }
    }
}

/// swiftc, clang and wasm-ld of the Swift toolchain on this machine.
struct Toolchain {
    let swiftc: String
    let clang: String
    let wasmLd: String

    static func find() throws -> Toolchain {
        let environment = ProcessInfo.processInfo.environment
        let path = (environment["PATH"] ?? "/usr/bin").split(separator: ":").map(String.init)
        func which(_ name: String, preferring directory: String?) -> String? {
            for candidate in ([directory].compactMap { $0 } + path) {
                let full = candidate + "/" + name
                if FileManager.default.isExecutableFile(atPath: full) { return full }
            }
            return nil
        }
        guard let swiftc = environment["SWIFTC"] ?? which("swiftc", preferring: nil) else {
            throw ContractBuilder.Failure("swiftc not found on PATH: contracts build with the Swift toolchain")
        }
        let resolved = URL(fileURLWithPath: swiftc).resolvingSymlinksInPath().deletingLastPathComponent().path
        guard let clang = which("clang", preferring: resolved), let wasmLd = which("wasm-ld", preferring: resolved) else {
            throw ContractBuilder.Failure("clang and wasm-ld not found beside \(swiftc) or on PATH")
        }
        return Toolchain(swiftc: swiftc, clang: clang, wasmLd: wasmLd)
    }
}
