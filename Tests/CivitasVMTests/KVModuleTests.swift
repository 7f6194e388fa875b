import CivitasCore
import CivitasModules
import CivitasTesting
import CivitasVM
import Testing

@Suite struct KVModuleTests {
    private func entries(_ count: Int, from first: Int = 0) -> [(key: [UInt8], value: [UInt8])] {
        (first..<first + count).map { (Array("record-\($0)".utf8), Array("value of \($0)".utf8)) }
    }

    @Test func putManyWritesEveryEntryAndChargesAsManyPuts() throws {
        let chain = try ExecutionChain()
        let writer = chain.admins[1]
        let owner = chain.address(writer)
        let batch = entries(300)
        let receipt = try chain.call(writer, Call(module: "kv", method: "putMany", arguments: KVModule.putManyArguments(batch)))
        #expect(receipt.status == .success)
        #expect(receipt.events.map(\.name) == ["putMany"])
        #expect(receipt.events.first?.attributes.first { $0.key == "count" }?.value == "300")
        for entry in batch { #expect(try chain.state.value(for: StateKeys.kv(owner: owner, key: entry.key)) == entry.value) }
        #expect(try chain.state.tree.get(StateKeys.kv(owner: owner, key: batch[299].key), root: chain.root) == batch[299].value)

        // Each write is charged as a `put` charges it; the rest is the transaction's carriage and the event.
        let writes = batch.reduce(UInt64(0)) {
            $0 + GasSchedule.stateWriteBase
                + GasSchedule.stateWritePerByte * UInt64(StateKeys.kv(owner: owner, key: $1.key).count + $1.value.count)
        }
        let arguments = KVModule.putManyArguments(batch).count
        #expect(receipt.gasUsed > writes + GasSchedule.intrinsic(transactionBytes: arguments))
        #expect(receipt.gasUsed < writes + GasSchedule.intrinsic(transactionBytes: arguments + 1_000) + 10_000)
    }

    @Test func aKeyGivenTwiceKeepsItsLastValue() throws {
        let chain = try ExecutionChain()
        let writer = chain.admins[0]
        let key = Array("twice".utf8)
        let receipt = try chain.call(
            writer, Call(module: "kv", method: "putMany", arguments: KVModule.putManyArguments([(key, [1]), (key, [2])])))
        #expect(receipt.status == .success)
        #expect(try chain.state.value(for: StateKeys.kv(owner: chain.address(writer), key: key)) == [2])
    }

    /// Refused calls fail their own receipt and write nothing but the sender's nonce.
    @Test func badPutManyCallsChangeNoRecord() throws {
        let chain = try ExecutionChain()
        let writer = chain.admins[0]
        let owner = chain.address(writer)
        let tooMany = KVModule.putManyArguments(entries(KVModule.putManyEntriesMax + 1))
        let truncated = Array(KVModule.putManyArguments(entries(3)).dropLast())
        var trailing = KVModule.putManyArguments(entries(2))
        trailing.append(0)
        // A key one byte over its limit, encoded by hand (the writer refuses to).
        var oversized = CanonicalWriter()
        oversized.u32(1)
        oversized.u32(UInt32(KVModule.keyBytesMax + 1))
        oversized.fixed([UInt8](repeating: 1, count: KVModule.keyBytesMax + 1))
        oversized.u32(1)
        oversized.u8(1)
        let oversizedKey = oversized.bytes
        let cases: [([UInt8], String)] = [
            (KVModule.putManyArguments([]), "kv.no_entries"),
            (tooMany, "call.invalid_arguments"),
            (truncated, "call.invalid_arguments"),
            (trailing, "call.invalid_arguments"),
            (oversizedKey, "call.invalid_arguments"),
            ([0xFF, 0xFF, 0xFF, 0xFF], "call.invalid_arguments"),
        ]
        for (arguments, code) in cases {
            let receipt = try chain.call(writer, Call(module: "kv", method: "putMany", arguments: arguments))
            guard case .failure(let got, _) = receipt.status else {
                Issue.record("putMany with \(arguments.count) argument bytes succeeded")
                continue
            }
            #expect(got == code)
        }
        for entry in entries(3) { #expect(try chain.state.value(for: StateKeys.kv(owner: owner, key: entry.key)) == nil) }

        // Out of gas halfway through the entries: none of them is written.
        let batch = entries(50, from: 1_000)
        let starved = try chain.call(writer, Call(module: "kv", method: "putMany", arguments: KVModule.putManyArguments(batch)), gasLimit: 20_000)
        #expect(starved.status != .success)
        for entry in batch { #expect(try chain.state.value(for: StateKeys.kv(owner: owner, key: entry.key)) == nil) }
    }

    @Test func keysShowAsTextOnlyWhenTheyArePrintable() {
        #expect(displayBytes(Array("user17/record-3".utf8)) == "user17/record-3")
        #expect(displayBytes(Array(" ~".utf8)) == " ~")
        #expect(displayBytes([]) == "")
        #expect(displayBytes(Array("café/Straße/数据".utf8)) == "café/Straße/数据")
        // Text that would read as hex, control characters, DEL, a noncharacter and bytes
        // that are not UTF-8 are all shown as hex.
        #expect(displayBytes(Array("0x1234".utf8)) == "0x" + Array("0x1234".utf8).hexString)
        #expect(displayBytes([0x61, 0x0a, 0x62]) == "0x610a62")
        #expect(displayBytes([0x61, 0x7f]) == "0x617f")
        #expect(displayBytes(Array("a\u{FFFE}".utf8)) == "0x61efbfbe")
        #expect(displayBytes([0x61, 0xc3]) == "0x61c3")
        #expect(displayBytes([0xff]) == "0xff")
    }
}
