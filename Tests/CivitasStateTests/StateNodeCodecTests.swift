import CivitasCore
@testable import CivitasState
import CivitasTesting
import Testing

/// The internal node's encoding, written and read through raw pointers: the layout of
/// docs/protocol.md, and every malformed input refused with the reader's errors.
@Suite struct StateNodeCodecTests {
    private func hash(_ random: inout SeededRandom) -> Hash {
        let bytes = (0..<4).flatMap { _ in withUnsafeBytes(of: random.next()) { Array($0) } }
        return Hash(bytes: bytes)
    }

    private func children(seed: UInt64) -> StateNode.Children {
        var random = SeededRandom(seed: seed)
        var children = StateNode.Children(repeating: .empty)
        repeat {
            for slot in 0..<StateNode.fanout {
                switch random.next() % 3 {
                case 0: children[slot] = .empty
                case 1:
                    children[slot] = StateNode.Child(
                        kind: .leaf, hash: hash(&random), version: random.next(), keyHash: hash(&random))
                default:
                    children[slot] = StateNode.Child(kind: .internalNode, hash: hash(&random), version: random.next())
                }
            }
        } while (0..<StateNode.fanout).allSatisfy { children[$0].kind == .empty }
        return children
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func nodesRoundTripInTheDocumentedLayout(seed: UInt64) throws {
        var children = children(seed: seed)
        let bytes = StateNode.encoded(children: &children)

        var expected = CanonicalWriter()
        expected.u8(StateNode.internalTag)
        var bitmap: UInt16 = 0
        for slot in 0..<StateNode.fanout where children[slot].kind != .empty { bitmap |= 1 << UInt16(slot) }
        expected.u16(bitmap)
        for slot in 0..<StateNode.fanout where children[slot].kind != .empty {
            expected.u8(children[slot].kind.rawValue)
            expected.hash(children[slot].hash)
            expected.u64(children[slot].version)
            if children[slot].kind == .leaf { expected.hash(children[slot].keyHash) }
        }
        #expect(bytes == expected.bytes)

        var decoded = StateNode.Children(repeating: .empty)
        try StateNode.decodeChildren(of: bytes, into: &decoded)
        for slot in 0..<StateNode.fanout { #expect(decoded[slot] == children[slot]) }
        guard case .internalNode(let again) = try StateNode(decoding: bytes) else {
            Issue.record("an internal node decoded as a leaf")
            return
        }
        for slot in 0..<StateNode.fanout { #expect(again[slot] == children[slot]) }
    }

    @Test func malformedNodesAreRefusedWithTheReadersErrors() throws {
        var children = children(seed: 9)
        let bytes = StateNode.encoded(children: &children)
        func error(_ input: [UInt8]) -> CodecError? {
            var out = StateNode.Children(repeating: .empty)
            do { try StateNode.decodeChildren(of: input, into: &out) } catch { return error }
            return nil
        }
        // Every prefix is truncated somewhere; none decodes.
        for length in 0..<bytes.count {
            guard case .truncated? = error(Array(bytes.prefix(length))) else {
                Issue.record("a node cut to \(length) of \(bytes.count) bytes was not refused as truncated")
                continue
            }
        }
        #expect(error(bytes + [0]) == .trailingBytes(count: 1))
        #expect(error([StateNode.leafTag] + bytes.dropFirst()) == .unknownTag(field: "internal node tag", tag: StateNode.leafTag))
        #expect(error([StateNode.internalTag, 0, 0]) == .invalid(field: "node child bitmap", reason: "an internal node without children"))
        var badKind = bytes
        badKind[3] = 0
        #expect(error(badKind) == .unknownTag(field: "child kind", tag: 0))
        badKind[3] = 7
        #expect(error(badKind) == .unknownTag(field: "child kind", tag: 7))
        // A set bitmap bit with no child behind it.
        var extraBit = bytes
        let bitmap = UInt16(bytes[1]) << 8 | UInt16(bytes[2])
        let missing = (0..<16).first { bitmap & (1 << UInt16($0)) == 0 }.map { bitmap | 1 << UInt16($0) }
        if let missing {
            extraBit[1] = UInt8(missing >> 8)
            extraBit[2] = UInt8(missing & 0xFF)
            #expect(error(extraBit) != nil)
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func aCursorReadsTheSlotsAskedForAsDecodingDoes(seed: UInt64) {
        var children = children(seed: seed)
        let bytes = StateNode.encoded(children: &children)
        var random = SeededRandom(seed: seed &+ 100)
        for _ in 0..<20 {
            // Increasing slots, some skipped.
            let asked = (0..<StateNode.fanout).filter { _ in random.next() % 2 == 0 }
            bytes.withUnsafeBytes { raw in
                var cursor = StateNode.ChildCursor(raw)
                for slot in asked {
                    let child = cursor.child(at: slot)
                    #expect(child == (children[slot].kind == .empty ? nil : children[slot]), "slot \(slot) of seed \(seed)")
                }
            }
        }
    }

    @Test func aCursorOverMalformedBytesGivesNoChildRatherThanReadingPastThem() {
        var children = StateNode.Children(repeating: .empty)
        for slot in 0..<StateNode.fanout {
            children[slot] = StateNode.Child(kind: slot % 2 == 0 ? .leaf : .internalNode, hash: Hash(bytes: [UInt8](repeating: UInt8(slot), count: 32)), version: UInt64(slot))
        }
        let bytes = StateNode.encoded(children: &children)
        for length in 0..<bytes.count {
            let cut = Array(bytes.prefix(length))
            cut.withUnsafeBytes { raw in
                var cursor = StateNode.ChildCursor(raw)
                // The last slot lies at the end: every cut loses it.
                #expect(cursor.child(at: StateNode.fanout - 1) == nil, "a node cut to \(length) of \(bytes.count) bytes")
            }
        }
        var leafTagged = bytes
        leafTagged[0] = StateNode.leafTag
        leafTagged.withUnsafeBytes { raw in
            var cursor = StateNode.ChildCursor(raw)
            #expect(cursor.child(at: 0) == nil)
        }
        var badKind = bytes
        badKind[3] = 7
        badKind.withUnsafeBytes { raw in
            var cursor = StateNode.ChildCursor(raw)
            #expect(cursor.child(at: 0) == nil)
        }
    }
}
