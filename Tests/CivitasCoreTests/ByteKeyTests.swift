import CivitasCore
import Testing

@Suite struct ByteKeyTests {
    /// Keys equal by their bytes find each other's entries; a key and its extensions, and
    /// keys of the same bytes in another order, are told apart.
    @Test func keysAreEqualExactlyWhenTheirBytesAre() {
        let keys: [[UInt8]] = [[], [0], [0, 0], [1, 2], [2, 1], [1, 2, 0], Array(repeating: 7, count: 64), Array(0...255)]
        var entries: [ByteKey: Int] = [:]
        for (index, key) in keys.enumerated() { entries[ByteKey(key)] = index }
        #expect(entries.count == keys.count)
        for (index, key) in keys.enumerated() {
            #expect(entries[ByteKey(Array(key))] == index)
            #expect(ByteKey(key).hashValue == ByteKey(Array(key)).hashValue)
        }
        #expect(entries[ByteKey([9])] == nil)
    }
}
