import ArgumentParser
import CivitasCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct Devnet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start or stop a local network of node processes.", subcommands: [Start.self, Stop.self, AddOrganisation.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a local network in the background and return once it answers.",
            discussion: "A directory that already holds a network is resumed: its chain continues where it stopped.")

        @Option(help: "Directory of the network.")
        var dir: String

        @Option(help: "Number of validators of a new network, one organisation each (1 to 16).")
        var validators = 4

        @Option(help: "API port of node0 of a new network; node i: base-port + i, peers: base-port + 100 + i; 0 picks free ports.")
        var basePort = 7700

        @Option(help: "Hash suite of a new network: sha256 or sm3.")
        var hashSuite: HashSuiteID = .sha256

        @Option(help: "Scheme of the generated keys of a new network.")
        var scheme: SignatureScheme = .ed25519

        @Option(help: "Funded member keys of a new network (keys/client.json, keys/client-N.json), for load generators.")
        var clients = 1

        @Option(help: "Seconds to wait for the nodes to answer.")
        var timeout = 60

        func validate() throws {
            guard (1...16).contains(validators) else { throw ValidationError("--validators must be 1 to 16") }
            guard (1...999).contains(clients) else { throw ValidationError("--clients must be 1 to 999") }
            guard (0...65_000).contains(basePort) else { throw ValidationError("--base-port must be 0 to 65000") }
            guard (1...600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 600 seconds") }
        }

        func run() async throws {
            let nodes = try await DevnetProcess.startAll(
                dir: dir, timeout: timeout,
                layout: NetworkLayout(
                    directory: dir, chainId: "civitas-devnet", hashSuite: hashSuite, schemes: SignatureScheme.allCases,
                    keyScheme: scheme, organisations: validators, basePort: basePort, clients: clients),
                log: { print($0) })
            let endpoints = nodes.map(\.endpoint)
            for (number, endpoint) in endpoints.enumerated() {
                print("node\(number) API: \(endpoint)  (status: \(endpoint)/v1/status, events: \(endpoint)/v1/events)")
            }
            print("client key: \(dir)/keys/client.json")
            print("try: civitas kv put hello world --node \(endpoints[0]) --key \(dir)/keys/client.json")
            print("stop: civitas devnet stop --dir \(dir)")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every node of a local network.")

        @Option(help: "Directory of the network.")
        var dir: String

        func run() async throws {
            var index = 0
            var stopped = 0
            while FileSystem.exists(NetworkLayout.nodeHome(dir, index) + "/node.json") {
                let home = NetworkLayout.nodeHome(dir, index)
                if let pid = DevnetProcess.runningPid(home: home) {
                    try await DevnetProcess.stop(pid: pid, home: home)
                    print("node\(index) stopped (pid \(pid))")
                    stopped += 1
                }
                index += 1
            }
            guard index > 0 else { throw CommandError("no network in \(dir)") }
            if stopped == 0 { print("no node of \(dir) was running") }
        }
    }
}

extension Devnet {
    struct AddOrganisation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-organisation",
            abstract: "Prepare a new organisation's keys, CA and validator node beside a local network.",
            discussion: """
                Writes DIR/keys/ID-admin.json, DIR/keys/ID-ca-*.pem and a new node home DIR/nodeN. \
                The node follows the chain once started (`civitas devnet start` starts it) and \
                becomes a validator when governance adds it; the command prints the proposal to make.
                """)

        @Option(help: "Directory of the network.")
        var dir: String
        @Option(help: "Organisation id (default: orgN).")
        var id: String?

        func run() async throws {
            let created = try OrganisationLayout(directory: dir, id: id).write()
            print("organisation \(created.id): admin key \(dir)/keys/\(created.id)-admin.json, CA \(created.authorityFile)")
            print("validator node: \(created.home) (start it with: civitas devnet start --dir \(dir))")
            print("propose it (as an existing organisation's admin), then approve with the others' admins:")
            print("  civitas validator add --home \(created.home) --organisation \(created.id) --tls-authority \(created.authorityFile) \\")
            print("    --organisation-admin \(created.admin) --key \(dir)/keys/org1-admin.json")
            print("  civitas governance approve ID --key \(dir)/keys/org2-admin.json   (and org3, …)")
        }
    }
}

/// Background node processes of a devnet, tracked by the pid file in each home.
enum DevnetProcess {
    struct Started {
        var home: String
        var endpoint: String
        var pid: pid_t
        /// False when the node was already running.
        var startedNow: Bool
    }

    /// Creates the network with `layout` unless `dir` holds one, starts every node that is
    /// not running, and returns once each answers.
    static func startAll(dir: String, timeout: Int, layout: NetworkLayout, log: (String) -> Void) async throws -> [Started] {
        if !FileSystem.exists(dir + "/genesis.json") {
            _ = try layout.write()
            log("created a new network in \(dir)")
        } else {
            log("resuming the network in \(dir)")
        }
        var index = 0
        var nodes: [Started] = []
        while FileSystem.exists(NetworkLayout.nodeHome(dir, index) + "/node.json") {
            let home = NetworkLayout.nodeHome(dir, index)
            var pid = runningPid(home: home)
            let startedNow = pid == nil
            if let pid {
                log("node\(index) already running (pid \(pid))")
            } else {
                pid = try spawn(home: home)
                log("node\(index) started (pid \(pid!)), log \(home)/node.log")
            }
            nodes.append(Started(home: home, endpoint: "", pid: pid!, startedNow: startedNow))
            index += 1
        }
        do {
            for index in nodes.indices {
                nodes[index].endpoint = try await waitUntilAnswering(home: nodes[index].home, seconds: timeout)
            }
        } catch {
            // A node that did not come up fails the whole start: stop the ones started here.
            await stopStartedNow(nodes)
            throw error
        }
        return nodes
    }

    static func runningPid(home: String) -> pid_t? {
        guard let data = try? FileSystem.read(home + "/node.pid"),
            let pid = pid_t(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        else { return nil }
        // A stale pid file from a crashed node may name a recycled pid: only trust it if
        // that process is a civitas node of this home.
        guard kill(pid, 0) == 0,
            let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
            cmdline.contains("node\u{0}run"), cmdline.contains(home)
        else { return nil }
        return pid
    }

    /// Starts `civitas node run --home HOME` in its own session (so closing the terminal
    /// does not stop it), with output appended to HOME/node.log.
    static func spawn(home: String) throws -> pid_t {
        let executable = try selfExecutable()
        let absoluteHome = URL(fileURLWithPath: home).standardizedFileURL.path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, absoluteHome + "/node.log", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc ≥ 2.26) is behind _GNU_SOURCE, which Swift's Glibc
        // import does not define; its value is fixed by the glibc ABI.
        let spawnSetsid: Int16 = 0x80
        posix_spawnattr_setflags(&attributes, spawnSetsid)
        let arguments = [executable, "node", "run", "--home", absoluteHome]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
        guard result == 0 else { throw CommandError("cannot start \(executable): \(String(cString: strerror(result)))") }
        return pid
    }

    static func selfExecutable() throws -> String {
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            throw CommandError("cannot find the civitas executable (/proc/self/exe)")
        }
        return path
    }

    /// Polls the node's status endpoint until it answers; bounded by `seconds`.
    static func waitUntilAnswering(home: String, seconds: Int) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let data = try? FileSystem.read(home + "/api.addr") {
                let endpoint = "http://" + String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if (try? await NodeClient(base: endpoint).get("/v1/status", as: StatusProbe.self)) != nil { return endpoint }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CommandError("node in \(home) did not answer within \(seconds) s; see \(home)/node.log")
    }

    private struct StatusProbe: Decodable { var height: UInt64 }

    /// Stops the nodes of `nodes` that `startAll` started (not those already running).
    static func stopStartedNow(_ nodes: [Started]) async {
        for node in nodes where node.startedNow { try? await stop(pid: node.pid, home: node.home) }
    }

    /// Stops a node and returns once its process is gone (so its data directory's lock
    /// is free), not merely once it has said so.
    static func stop(pid: pid_t, home: String) async throws {
        kill(pid, SIGTERM)
        if try await waitForExit(pid, seconds: 20) { return }
        // Safe: every block reported committed is already durable.
        kill(pid, SIGKILL)
        _ = try await waitForExit(pid, seconds: 5)
        try? FileManager.default.removeItem(atPath: home + "/node.pid")
    }

    private static func waitForExit(_ pid: pid_t, seconds: Int) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if hasExited(pid) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// True once `pid` has ended: reaped here if it is this process's child, otherwise
    /// absent or a zombie (which has closed its files).
    static func hasExited(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { return true }
        guard reaped == -1, errno == ECHILD else { return false }
        if kill(pid, 0) != 0 { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return true }
        return stat[end...].dropFirst(2).first == "Z"
    }
}
