import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking HTTP/1.1 client connection for the load generator: one keep-alive socket,
/// requests encoded before the timed window, responses read with a bounded wait. It costs
/// the generator almost nothing per request, so the generator is not what is measured.
/// Used by one thread at a time: made on one, then handed to the thread that reads it.
final class LoopbackHTTP: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Endpoint: Sendable {
        var host: String
        var port: UInt16

        /// `http://HOST:PORT` with an IPv4 address or `localhost`.
        init(url: String) throws {
            guard let components = URLComponents(string: url), components.scheme == "http", let port = components.port,
                (1...65_535).contains(port), var host = components.host
            else { throw Failure("expected http://HOST:PORT, got \(url)") }
            if host == "localhost" { host = "127.0.0.1" }
            var address = in_addr()
            guard inet_pton(AF_INET, host, &address) == 1 else { throw Failure("\(url): the load generator needs an IPv4 address") }
            self.host = host
            self.port = UInt16(port)
        }

        func request(_ method: String, _ path: String, body: [UInt8] = [], contentType: String = "application/json") -> [UInt8] {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
            if method != "GET" { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
            return Array((head + "\r\n").utf8) + body
        }
    }

    private let socket: Int32
    /// Asked when a read times out: true to go on waiting (a quiet event stream), false
    /// to fail the read.
    var keepWaiting: (@Sendable () -> Bool)?
    private var buffer: [UInt8] = []
    private var start = 0

    init(_ endpoint: Endpoint, timeoutSeconds: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = endpoint.port.bigEndian
        inet_pton(AF_INET, endpoint.host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(socket)
            throw Failure("cannot connect to \(endpoint.host):\(endpoint.port): \(reason)")
        }
    }

    deinit { close(socket) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { write(socket, $0.baseAddress! + sent, bytes.count - sent) }
            guard count > 0 else { throw Failure("send failed: \(String(cString: strerror(errno)))") }
            sent += count
        }
    }

    /// Status and whole body of the next response (Content-Length or chunked).
    func response() throws -> (status: Int, body: [UInt8]) {
        let (status, headers) = try head()
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var body: [UInt8] = []
            while let chunk = try chunk() { body += chunk }
            return (status, body)
        }
        guard let length = headers["content-length"].flatMap(Int.init), length >= 0 else { return (status, []) }
        return (status, try take(length))
    }

    /// Status and headers of a response whose body is read afterwards with `chunk()`.
    func head() throws -> (status: Int, headers: [String: String]) {
        let end = try until([13, 10, 13, 10])
        let text = String(decoding: try take(end), as: UTF8.self)
        _ = try take(4)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw Failure("empty response") }
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure("bad status line") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers)
    }

    /// The next chunk of a chunked body; nil at its end.
    func chunk() throws -> [UInt8]? {
        let end = try until([13, 10])
        let sizeText = String(decoding: try take(end), as: UTF8.self).split(separator: ";").first ?? ""
        _ = try take(2)
        guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0, size < 1 << 30 else {
            throw Failure("bad chunk size")
        }
        let data = try take(size)
        _ = try take(2)
        return size == 0 ? nil : data
    }

    private var available: Int { buffer.count - start }

    /// Offset from the read position of the first `pattern`, reading until it arrives.
    private func until(_ pattern: [UInt8]) throws -> Int {
        var searched = 0
        while true {
            if available >= pattern.count {
                let found = buffer.withUnsafeBufferPointer { bytes -> Int? in
                    var index = start + searched
                    while index + pattern.count <= bytes.count {
                        if bytes[index] == pattern[0], pattern.indices.allSatisfy({ bytes[index + $0] == pattern[$0] }) { return index - start }
                        index += 1
                    }
                    return nil
                }
                if let found { return found }
                searched = max(0, available - pattern.count + 1)
            }
            guard available < 1 << 20 else { throw Failure("response header too long") }
            try fill()
        }
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while available < count { try fill() }
        let bytes = Array(buffer[start..<start + count])
        start += count
        return bytes
    }

    private func fill() throws {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var count = chunk.withUnsafeMutableBytes { read(socket, $0.baseAddress!, $0.count) }
        while count < 0, errno == EAGAIN || errno == EWOULDBLOCK, keepWaiting?() == true {
            count = chunk.withUnsafeMutableBytes { read(socket, $0.baseAddress!, $0.count) }
        }
        guard count > 0 else {
            throw Failure(count == 0 ? "connection closed" : "read failed: \(String(cString: strerror(errno)))")
        }
        buffer += chunk[0..<count]
    }
}
