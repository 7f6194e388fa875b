import NIOCore

/// One message between peers: `u32 length ‖ u8 kind ‖ payload`, where `length` counts
/// the kind byte and the payload (docs/protocol.md, "Peer frames").
public struct Frame: Equatable, Sendable {
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// The first frame each way: chain, validator index, signature (docs/protocol.md).
        case hello = 1
        /// A peer message: consensus, gossiped transactions, catch-up.
        case message = 2
    }

    public var kind: Kind
    public var payload: ByteBuffer

    public init(kind: Kind, payload: ByteBuffer) {
        self.kind = kind
        self.payload = payload
    }

    public init(kind: Kind, bytes: [UInt8]) {
        self.init(kind: kind, payload: ByteBuffer(bytes: bytes))
    }

    public var bytes: [UInt8] { Array(payload.readableBytesView) }

    /// Largest frame a peer may send; a catch-up response of blocks is the largest
    /// message, bounded by the block size limits.
    public static let defaultMaxBytes = 64 << 20
}

public struct FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case tooLarge = "network.frame_too_large"
        case empty = "network.frame_empty"
        case unknownKind = "network.unknown_frame_kind"
    }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Splits the byte stream into frames, refusing a frame larger than the limit before
/// buffering it: a peer cannot make this node allocate more than `maxBytes` at once.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    public let maxBytes: Int

    public init(maxBytes: Int = Frame.defaultMaxBytes) { self.maxBytes = maxBytes }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.next(from: &buffer, maxBytes: maxBytes) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// The next whole frame at the front of `buffer`, or nil if more bytes are needed.
    public static func next(from buffer: inout ByteBuffer, maxBytes: Int) throws(FrameError) -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        guard length > 0 else { throw FrameError(.empty, "a frame has no kind byte") }
        guard Int(length) <= maxBytes else { throw FrameError(.tooLarge, "frame of \(length) bytes, at most \(maxBytes)") }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let rawKind = buffer.readInteger(as: UInt8.self)!
        guard let kind = Frame.Kind(rawValue: rawKind) else { throw FrameError(.unknownKind, "frame kind \(rawKind)") }
        let payload = buffer.readSlice(length: Int(length) - 1)!
        return Frame(kind: kind, payload: payload)
    }
}

public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(1 + frame.payload.readableBytes), endianness: .big)
        out.writeInteger(frame.kind.rawValue)
        var payload = frame.payload
        out.writeBuffer(&payload)
    }
}
