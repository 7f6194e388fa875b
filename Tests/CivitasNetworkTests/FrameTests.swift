import CivitasNetwork
import NIOCore
import NIOEmbedded
import Testing

@Suite struct FrameTests {
    func channel(maxBytes: Int = 1_024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxBytes: maxBytes)))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
        return channel
    }

    @Test func framesRoundTripAcrossArbitrarySplits() throws {
        let frames = [
            Frame(kind: .message, bytes: [1, 2, 3]), Frame(kind: .hello, bytes: []),
            Frame(kind: .message, bytes: [UInt8](repeating: 7, count: 500)),
        ]
        let writer = try channel()
        var wire = ByteBuffer()
        for frame in frames {
            try writer.writeOutbound(frame)
            var chunk = try #require(try writer.readOutbound(as: ByteBuffer.self))
            wire.writeBuffer(&chunk)
        }
        // Deliver the bytes in pieces of every size from 1 to 7.
        for piece in 1...7 {
            let reader = try channel()
            var remaining = wire
            while remaining.readableBytes > 0 {
                let slice = remaining.readSlice(length: min(piece, remaining.readableBytes))!
                try reader.writeInbound(slice)
            }
            for frame in frames { #expect(try reader.readInbound(as: Frame.self) == frame) }
            #expect(try reader.readInbound(as: Frame.self) == nil)
        }
    }

    @Test func anOversizedFrameIsRefusedBeforeItsBytesArrive() throws {
        let reader = try channel(maxBytes: 100)
        var header = ByteBuffer()
        header.writeInteger(UInt32(1_000_000), endianness: .big)
        #expect(throws: FrameError(.tooLarge, "frame of 1000000 bytes, at most 100")) { try reader.writeInbound(header) }
    }

    @Test func emptyAndUnknownFramesAreRefused() throws {
        var empty = ByteBuffer()
        empty.writeInteger(UInt32(0), endianness: .big)
        #expect(throws: FrameError.self) { try channel().writeInbound(empty) }
        var unknown = ByteBuffer()
        unknown.writeInteger(UInt32(1), endianness: .big)
        unknown.writeInteger(UInt8(200))
        #expect(throws: FrameError(.unknownKind, "frame kind 200")) { try channel().writeInbound(unknown) }
    }
}
