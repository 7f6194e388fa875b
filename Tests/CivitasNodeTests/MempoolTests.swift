import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasNode
import CivitasTesting
import Testing

@Suite struct MempoolTests {
    let chain = TestChain()

    func put(_ key: String) -> Call {
        Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array(key.utf8), value: [1]))
    }

    func transaction(_ client: Int, nonce: UInt64, expiry: UInt64 = 1_000) -> VerifiedTransaction {
        chain.transaction(put("k\(nonce)"), client: client, nonce: nonce, expiryHeight: expiry)
    }

    func sender(_ client: Int) -> Address { chain.address(chain.clients[client]) }

    @Test func reapTakesEachSendersConsecutiveNoncesInArrivalOrder() throws {
        var mempool = Mempool(limits: MempoolLimits())
        // Client 1 arrives first; client 0 has a gap after nonce 1.
        for nonce in [0, 1, 2] as [UInt64] { try mempool.admit(transaction(1, nonce: nonce), sender: sender(1), accountNonce: 0) }
        for nonce in [0, 1, 3] as [UInt64] { try mempool.admit(transaction(0, nonce: nonce), sender: sender(0), accountNonce: 0) }
        #expect(mempool.count == 6)
        let picked = mempool.reap(countMax: 100, gasMax: .max) { _ in 0 }
        #expect(picked.map(\.body.nonce) == [0, 1, 2, 0, 1])
        #expect(picked.prefix(3).allSatisfy { $0.body.sender == chain.clients[1].publicKey })
        #expect(mempool.reap(countMax: 4, gasMax: .max) { _ in 0 }.count == 4)
        #expect(mempool.reap(countMax: 100, gasMax: 2_000_000) { _ in 0 }.count == 2)
    }

    @Test func admissionRefusesWithTypedErrorsAndChangesNothing() throws {
        var mempool = Mempool(limits: MempoolLimits(transactionsMax: 10, bytesMax: 1 << 20, senderTransactionsMax: 3))
        let first = transaction(0, nonce: 5)
        try mempool.admit(first, sender: sender(0), accountNonce: 5)
        let bytes = mempool.byteCount
        func refusal(_ transaction: VerifiedTransaction, accountNonce: UInt64) -> TransactionError.Code? {
            do throws(TransactionError) {
                try mempool.admit(transaction, sender: sender(0), accountNonce: accountNonce)
                return nil
            } catch { return error.code }
        }
        #expect(refusal(first, accountNonce: 5) == .duplicate)
        #expect(refusal(chain.transaction(put("other"), nonce: 5), accountNonce: 5) == .duplicate)
        #expect(refusal(transaction(0, nonce: 4), accountNonce: 5) == .nonceTooLow)
        #expect(refusal(transaction(0, nonce: 8), accountNonce: 5) == .nonceTooHigh)
        try mempool.admit(transaction(0, nonce: 6), sender: sender(0), accountNonce: 5)
        try mempool.admit(transaction(0, nonce: 7), sender: sender(0), accountNonce: 5)
        #expect(refusal(transaction(0, nonce: 7), accountNonce: 6) == .duplicate)
        // Within the nonce window, but the queue still holds the used nonce 5 until pruned.
        #expect(refusal(transaction(0, nonce: 8), accountNonce: 6) == .senderQueueFull)
        #expect(mempool.count == 3 && mempool.byteCount == 3 * bytes)
        #expect(mempool.transaction(first.id) == first)
    }

    @Test func pruningDropsUsedNoncesAndExpiredTransactionsAndEmptySenders() throws {
        var mempool = Mempool(limits: MempoolLimits())
        for nonce in 0..<4 as Range<UInt64> { try mempool.admit(transaction(0, nonce: nonce), sender: sender(0), accountNonce: 0) }
        try mempool.admit(transaction(1, nonce: 0, expiry: 3), sender: sender(1), accountNonce: 0)
        try mempool.admit(transaction(1, nonce: 1, expiry: 50), sender: sender(1), accountNonce: 0)
        let perTransaction = mempool.byteCount / 6
        mempool.prune(senders: [sender(0)], nextHeight: 2) { _ in 2 }
        #expect(mempool.count == 4 && mempool.byteCount == 4 * perTransaction)
        #expect(mempool.reap(countMax: 100, gasMax: .max) { $0 == sender(0) ? 2 : 0 }.map(\.body.nonce) == [2, 3, 0, 1])
        mempool.pruneExpired(nextHeight: 10)
        #expect(mempool.count == 3)
        mempool.prune(senders: [sender(0), sender(1)], nextHeight: 60) { _ in 4 }
        #expect(mempool.isEmpty && mempool.byteCount == 0)
        // A sender whose queue emptied starts again at the back of the arrival order.
        try mempool.admit(transaction(0, nonce: 9), sender: sender(0), accountNonce: 9)
        #expect(mempool.reap(countMax: 10, gasMax: .max) { _ in 9 }.count == 1)
    }
}
