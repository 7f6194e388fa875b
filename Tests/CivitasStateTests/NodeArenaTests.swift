@testable import CivitasState
import CivitasTesting
import Testing

@Suite struct NodeArenaTests {
    /// Blocks handed out at once never overlap, freed ones are handed out again for their
    /// size, and a mapping starts zeroed and aligned to a huge page.
    @Test(arguments: [UInt64(2), 41]) func blocksDoNotOverlapAndAreReused(seed: UInt64) {
        var arena = NodeArena()
        defer { arena.destroy() }
        var random = SeededRandom(seed: seed)
        var live: [(pointer: UnsafeMutableRawPointer, size: Int, fill: UInt8)] = []
        var freedBySize: [Int: Set<UnsafeMutableRawPointer>] = [:]
        for round in 0..<20_000 {
            if !live.isEmpty, random.next() % 3 == 0 {
                let block = live.remove(at: Int(random.next() % UInt64(live.count)))
                #expect(
                    (0..<block.size).allSatisfy { block.pointer.load(fromByteOffset: $0, as: UInt8.self) == block.fill },
                    "seed \(seed), round \(round): a block was overwritten")
                arena.release(block.pointer, size: block.size)
                if block.size <= NodeArena.largest { freedBySize[NodeArena.blockBytes(block.size), default: []].insert(block.pointer) }
            } else {
                let size = 1 + Int(random.next() % UInt64(NodeArena.largest + 600))
                let pointer = arena.allocate(size)
                if size <= NodeArena.largest, let freed = freedBySize[NodeArena.blockBytes(size)], !freed.isEmpty {
                    #expect(freed.contains(pointer), "seed \(seed), round \(round): a freed block of the size was not reused")
                }
                freedBySize[NodeArena.blockBytes(size)]?.remove(pointer)
                let fill = UInt8(truncatingIfNeeded: round)
                pointer.initializeMemory(as: UInt8.self, repeating: fill, count: size)
                live.append((pointer, size, fill))
            }
        }
        for block in live {
            #expect((0..<block.size).allSatisfy { block.pointer.load(fromByteOffset: $0, as: UInt8.self) == block.fill }, "seed \(seed)")
            arena.release(block.pointer, size: block.size)
        }
    }

    @Test func aMappingIsZeroedAndAlignedToAHugePage() {
        let region = NodeArena.map(3 << 20)
        defer { NodeArena.unmap(region) }
        #expect(UInt(bitPattern: region.base) % UInt(NodeArena.hugePage) == 0)
        #expect(region.bytes == 4 << 20)
        #expect((0..<region.bytes / 8).allSatisfy { region.base.load(fromByteOffset: $0 * 8, as: UInt64.self) == 0 })
    }
}
