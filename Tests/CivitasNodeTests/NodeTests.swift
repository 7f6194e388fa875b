import CivitasClient
import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasNode
import CivitasStorage
import CivitasTesting
import Testing

@Suite struct NodeTests {
    let chain = TestChain()

    func put(_ key: String, _ value: String) -> Call {
        Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: Array(key.utf8), value: Array(value.utf8)))
    }

    @Test func transactionTravelsToACertifiedBlockWithProof() async throws {
        let node = try chain.node()
        try await node.submit(chain.transaction(put("a", "1"), nonce: 0))
        let committed = try #require(await node.produceBlock())
        #expect(committed.block.header.height == 1)
        let certificate = try #require(committed.certificate)
        try certificate.verify(against: chain.genesis.validatorSet(), verifier: SignatureVerifiers())
        let key = StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("a".utf8))
        let bundle = try await node.prove(key, height: nil)
        #expect(bundle.proof.value == Array("1".utf8))
        #expect(bundle.proof.verify(root: committed.block.header.stateRoot, using: chain.hasher))
    }

    /// A node that keeps 16 heights prunes on its own thread as it commits: proofs at
    /// older heights answer `node.state_pruned`, the kept ones prove, and the store holds
    /// fewer tree nodes than an archive node's after the same blocks; the archive node
    /// (the default) lists nothing for a pruner.
    @Test func aNodePrunesStatesOlderThanItKeeps() async throws {
        func run(keeping kept: UInt64) async throws -> (Node, MemoryStore) {
            let store = MemoryStore()
            let node = try chain.node(store: store, limits: NodeLimits(stateHeightsKept: Int(kept)))
            let running = Task { await node.run() }
            defer { running.cancel() }
            for nonce in 0..<40 {
                try await node.submit(chain.transaction(put("k\(nonce % 4)", "v\(nonce)"), nonce: UInt64(nonce)))
                try #require(await node.produceBlock() != nil)
            }
            #expect(node.waitForPruning(seconds: 30))
            return (node, store)
        }
        let (node, store) = try await run(keeping: 16)
        let head = await node.status().height
        #expect(node.stateOldestKept == head - 16)
        let key = StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("k1".utf8))
        for height in [1, head - 17] {
            let error = await #expect(throws: NodeError.self) { try await node.prove(key, height: height) }
            #expect(error?.code == .statePruned)
        }
        for height in (head - 16)...head {
            let bundle = try await node.prove(key, height: height)
            #expect(bundle.proof.verify(root: bundle.header.stateRoot, using: chain.hasher))
        }
        let (_, archive) = try await run(keeping: 0)
        for bad in [-1, 1, 15] {
            let error = #expect(throws: NodeError.self) { try chain.node(limits: NodeLimits(stateHeightsKept: bad)) }
            #expect(error?.code == .config)
        }
        let nodes = { (store: MemoryStore) in try store.scan(prefix: [StorePrefix.stateNode.rawValue], start: nil, limit: .max).count }
        #expect(try nodes(store) < nodes(archive))
        #expect(try archive.scan(prefix: [StorePrefix.staleStateNode.rawValue], start: nil, limit: 1).isEmpty)
        #expect(try !store.scan(prefix: [StorePrefix.staleStateNode.rawValue], start: nil, limit: 1).isEmpty)
    }

    func rejection(_ node: Node, _ transaction: VerifiedTransaction) async -> TransactionError.Code? {
        do {
            try await node.submit(transaction)
            return nil
        } catch { return error.code }
    }

    @Test func badTransactionsAreRefusedWithTypedErrors() async throws {
        let node = try chain.node()
        let rootBefore = await node.status().stateRoot
        // Wrong chain id.
        let other = TransactionBuilder(chainId: "other-chain", hashSuite: .sha256, key: chain.clients[0])
        let (foreign, _) = try other.sign(call: put("a", "1"), nonce: 0, expiryHeight: 100)
        #expect(await rejection(node, try VerifiedTransaction.verify(foreign, hasher: chain.hasher, verifier: SignatureVerifiers())) == .wrongChain)
        // Expired.
        #expect(await rejection(node, chain.transaction(put("a", "1"), nonce: 0, expiryHeight: 0)) == .expired)
        // Unknown sender.
        let stranger = TransactionBuilder(chainId: chain.genesis.chainId, hashSuite: .sha256, key: chain.outsider)
        let (strange, _) = try stranger.sign(call: put("a", "1"), nonce: 0, expiryHeight: 100)
        #expect(await rejection(node, try VerifiedTransaction.verify(strange, hasher: chain.hasher, verifier: SignatureVerifiers())) == .unknownSender)
        // Gas limit below the intrinsic cost.
        #expect(await rejection(node, chain.transaction(put("a", "1"), nonce: 0, gasLimit: 10)) == .gasLimitTooLow)
        // Duplicate, then a replayed nonce after commit.
        let first = chain.transaction(put("a", "1"), nonce: 0)
        try await node.submit(first)
        #expect(await rejection(node, first) == .duplicate)
        #expect(await rejection(node, chain.transaction(put("b", "2"), nonce: 0)) == .duplicate)
        #expect(await rejection(node, chain.transaction(put("b", "2"), nonce: 5_000)) == .nonceTooHigh)
        #expect(await node.status().stateRoot == rootBefore)
        await node.produceBlock()
        #expect(await rejection(node, first) == .duplicate)
        #expect(await rejection(node, chain.transaction(put("c", "3"), nonce: 0)) == .nonceTooLow)
    }

    @Test func badSignatureAndUnknownSchemeAndMalformedBytes() throws {
        var signed = chain.transaction(put("a", "1"), nonce: 0).transaction
        var bytes = signed.signature.bytes
        bytes[0] ^= 1
        signed.signature = try Signature(scheme: .ed25519, bytes: bytes)
        #expect(throws: TransactionError(.badSignature, "")) {
            try VerifiedTransaction.verify(signed, hasher: chain.hasher, verifier: SignatureVerifiers())
        }
        var raw = chain.transaction(put("a", "1"), nonce: 0).transaction.canonicalBytes
        let schemeOffset = 1 + 4 + chain.genesis.chainId.utf8.count
        raw[schemeOffset] = 0x33
        do {
            _ = try SignedTransaction(wire: raw)
            Issue.record("an unknown scheme decoded")
        } catch {
            #expect(TransactionError(decoding: error).code == .unknownScheme)
        }
        let oversized = [UInt8](repeating: 1, count: ProtocolLimits.transactionBytesMax + 1)
        do {
            _ = try SignedTransaction(wire: oversized)
            Issue.record("oversized bytes decoded")
        } catch {
            #expect(TransactionError(decoding: error).code == .oversized)
        }
    }

    @Test func schemesOutsideGenesisAreRefused() async throws {
        let edOnly = TestChain(schemes: [.ed25519], clientSchemes: [.ed25519])
        let node = try edOnly.node()
        let p256 = try PrivateKey(scheme: .p256, rawRepresentation: [1] + [UInt8](repeating: 5, count: 31))
        let (signed, _) = try TransactionBuilder(chainId: edOnly.genesis.chainId, hashSuite: .sha256, key: p256)
            .sign(call: put("a", "1"), nonce: 0, expiryHeight: 100)
        let verified = try VerifiedTransaction.verify(signed, hasher: edOnly.hasher, verifier: SignatureVerifiers())
        #expect(await rejection(node, verified) == .schemeNotAccepted)
    }

    @Test func fullMempoolRefusesAndRecovers() async throws {
        let limits = NodeLimits(mempool: MempoolLimits(transactionsMax: 3, bytesMax: 1 << 20, senderTransactionsMax: 100))
        let node = try chain.node(limits: limits)
        for nonce in 0..<3 { try await node.submit(chain.transaction(put("k\(nonce)", "v"), nonce: UInt64(nonce))) }
        #expect(await rejection(node, chain.transaction(put("k3", "v"), nonce: 3)) == .mempoolFull)
        await node.produceBlock()
        #expect(await rejection(node, chain.transaction(put("k3", "v"), nonce: 3)) == nil)
    }

    @Test func failedCallsLeaveFailedReceiptsAndNoStateChange() async throws {
        let node = try chain.node()
        let recipient = chain.address(chain.clients[1])
        let calls: [(Call, String)] = [
            (Call(module: "token", method: "transfer", arguments: TokenModule.transferArguments(to: recipient, amount: TestChain.clientBalance + 1)), "token.insufficient_balance"),
            (Call(module: "nope", method: "x", arguments: []), "call.unknown_module"),
            (Call(module: "kv", method: "nope", arguments: []), "call.unknown_method"),
            (Call(module: "kv", method: "put", arguments: [1, 2, 3]), "call.invalid_arguments"),
            (Call(module: "kv", method: "delete", arguments: KVModule.deleteArguments(key: [9])), "kv.not_found"),
        ]
        var ids: [Hash] = []
        for (nonce, (call, _)) in calls.enumerated() {
            let transaction = chain.transaction(call, nonce: UInt64(nonce))
            ids.append(transaction.id)
            try await node.submit(transaction)
        }
        // Out of gas: enough for admission, not for the write.
        let starving = chain.transaction(put("big", String(repeating: "x", count: 2_000)), nonce: UInt64(calls.count), gasLimit: 30_000)
        try await node.submit(starving)
        let balancesBefore = await node.value(StateKeys.balance(chain.address(chain.clients[0])))
        let block = try #require(await node.produceBlock())
        #expect(block.block.transactions.count == calls.count + 1)
        for (index, (_, code)) in calls.enumerated() {
            let outcome = try #require(try await node.transaction(ids[index]))
            #expect(outcome.receipt.status == .failure(code: code, message: failureMessage(outcome.receipt)))
        }
        let starved = try #require(try await node.transaction(starving.id))
        #expect(starved.receipt.status == .failure(code: "gas.out_of_gas", message: "out of gas (limit 30000)"))
        #expect(starved.receipt.gasUsed == 30_000)
        #expect(await node.value(StateKeys.balance(chain.address(chain.clients[0]))) == balancesBefore)
        #expect(await node.value(StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("big".utf8))) == nil)
        // Failed calls still use their nonce.
        #expect(await node.value(StateKeys.nonce(chain.address(chain.clients[0]))) == StateKeys.encode(UInt64(calls.count + 1)))
    }

    func failureMessage(_ receipt: Receipt) -> String {
        if case .failure(_, let message) = receipt.status { return message }
        return ""
    }

    @Test func transferMovesBalanceAndEmitsEvent() async throws {
        let node = try chain.node()
        let recipient = chain.address(chain.clients[1])
        let transfer = chain.transaction(
            Call(module: "token", method: "transfer", arguments: TokenModule.transferArguments(to: recipient, amount: 250)), nonce: 0)
        try await node.submit(transfer)
        await node.produceBlock()
        let outcome = try #require(try await node.transaction(transfer.id))
        #expect(outcome.receipt.status == .success)
        #expect(outcome.receipt.events.first?.name == "transfer")
        #expect(await node.value(StateKeys.balance(recipient)) == StateKeys.encode(TestChain.clientBalance + 250))
        #expect(await node.value(StateKeys.balance(chain.address(chain.clients[0]))) == StateKeys.encode(TestChain.clientBalance - 250))
    }

    /// Commits `count` kv puts (k0 = v0, …), one block each, on a node over `store`, and
    /// returns the head's state root and height; the node is gone when it returns.
    func commitPuts(_ count: Int, into store: MemoryStore) async throws -> (root: Hash, height: UInt64) {
        let node = try chain.node(store: store)
        for nonce in 0..<count {
            try await node.submit(chain.transaction(put("k\(nonce)", "v\(nonce)"), nonce: UInt64(nonce)))
            await node.produceBlock()
        }
        return (await node.status().stateRoot, await node.status().height)
    }

    @Test func restartResumesAtTheLastCommittedHeight() async throws {
        let store = MemoryStore()
        let (root, height) = try await commitPuts(5, into: store)
        // A block's certified copy goes when the block commits: what is kept on disk is
        // only the certified chain above the committed head, never the whole history.
        let kept = try store.scan(prefix: [StorePrefix.certifiedBlock.rawValue], start: nil, limit: 100)
        #expect(!kept.isEmpty)
        for entry in kept {
            #expect(try SyncResponse.Certified(canonicalBytes: entry.value).block.header.height > height)
        }
        let reopened = try chain.node(store: store)
        #expect(await reopened.status().height == height)
        #expect(await reopened.status().stateRoot == root)
        try await reopened.submit(chain.transaction(put("k5", "v5"), nonce: 5))
        // The certified empty block after the last committed one was kept on disk: the
        // next block extends it, and its commit commits both.
        #expect(await reopened.produceBlock()?.block.header.height == height + 2)
        #expect(await reopened.value(StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("k5".utf8))) == Array("v5".utf8))
    }

    @Test func aStoreOfAnotherChainIsRefused() throws {
        let store = MemoryStore()
        _ = try chain.node(store: store)
        let other = TestChain(hashSuite: .sm3)
        #expect(throws: NodeError(.genesisMismatch, "")) { try other.node(store: store) }
    }

    /// A data directory written by an earlier layout (no format recorded: format 1) is
    /// refused with a clear error before anything is read from it or written to it.
    @Test func aStoreOfAnEarlierFormatIsRefused() throws {
        let store = MemoryStore()
        _ = try chain.node(store: store)
        var downgrade = WriteBatch()
        downgrade.delete(StorePrefix.metadata.key(Array("format".utf8)))
        try store.write(downgrade, durable: true)
        do {
            _ = try chain.node(store: store)
            Issue.record("a format-1 store was opened")
        } catch let error as NodeError {
            #expect(error.code == .storage && error.message.contains("store format 1"))
        }
    }

    /// Rewrites a store's tree into the layout of format 3: every node under `n` + its
    /// hash, children named by kind, hash and (leaves) key hash, with no versions and no
    /// root index.
    static func downgradeToFormat3(_ store: MemoryStore) throws {
        var batch = WriteBatch()
        for entry in try store.scan(prefix: [StorePrefix.stateNode.rawValue], start: nil, limit: 1_000_000) {
            var node = entry.value
            if node.first == 3 {
                node = Array(entry.value[0..<3])
                var offset = 3
                while offset < entry.value.count {
                    let kind = entry.value[offset]
                    node += entry.value[offset..<(offset + 33)]
                    if kind == 1 { node += entry.value[(offset + 41)..<(offset + 73)] }
                    offset += kind == 1 ? 73 : 41
                }
            }
            batch.delete(entry.key)
            batch.put(StorePrefix.stateNodeByHash.key(Array(entry.key.suffix(32))), node)
        }
        for entry in try store.scan(prefix: [StorePrefix.stateRoot.rawValue], start: nil, limit: 1_000_000) {
            batch.delete(entry.key)
        }
        batch.delete(StorePrefix.metadata.key(Array("stateVersion".utf8)))
        batch.put(StorePrefix.metadata.key(Array("format".utf8)), [0, 0, 0, 0, 0, 0, 0, 3])
        try store.write(batch, durable: true)
    }

    /// A format-3 data directory is rebuilt in place at start: the same head and state
    /// root, every key readable and provable, no node left under the old prefix, and the
    /// chain goes on.
    @Test func aFormat3StoreIsMigratedInPlace() async throws {
        let store = MemoryStore()
        let (root, height) = try await commitPuts(6, into: store)
        try Self.downgradeToFormat3(store)
        let reopened = try chain.node(store: store)
        #expect(await reopened.status().height == height)
        #expect(await reopened.status().stateRoot == root)
        #expect(try store.scan(prefix: [StorePrefix.stateNodeByHash.rawValue], start: nil, limit: 10).isEmpty)
        #expect(try store.get(StorePrefix.metadata.key(Array("format".utf8))) == [0, 0, 0, 0, 0, 0, 0, 5])
        let key = StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("k3".utf8))
        let bundle = try await reopened.prove(key, height: nil)
        #expect(bundle.proof.value == Array("v3".utf8))
        #expect(bundle.proof.verify(root: bundle.header.stateRoot, using: ChainHasher(chain.genesis.hashSuite)))
        try await reopened.submit(chain.transaction(put("k6", "v6"), nonce: 6))
        await reopened.produceBlock()
        #expect(await reopened.value(StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("k6".utf8))) == Array("v6".utf8))
    }

    /// A format-3 store whose flat index does not give the head's state root is left as
    /// it is, with an error that says so.
    @Test func aMigrationThatDoesNotReachTheHeadsRootChangesNothing() async throws {
        let store = MemoryStore()
        do {
            let node = try chain.node(store: store)
            try await node.submit(chain.transaction(put("a", "1"), nonce: 0))
            await node.produceBlock()
        }
        try Self.downgradeToFormat3(store)
        var tamper = WriteBatch()
        tamper.put(StorePrefix.stateValue.key(StateKeys.kv(owner: chain.address(chain.clients[0]), key: Array("a".utf8))), [9])
        try store.write(tamper, durable: true)
        do {
            _ = try chain.node(store: store)
            Issue.record("a store whose state does not match its head was migrated")
        } catch let error as NodeError {
            #expect(error.code == .storage && error.message.contains("left at format 3"))
        }
        #expect(try store.get(StorePrefix.metadata.key(Array("format".utf8))) == [0, 0, 0, 0, 0, 0, 0, 3])
        #expect(try !store.scan(prefix: [StorePrefix.stateNodeByHash.rawValue], start: nil, limit: 10).isEmpty)
    }

    /// The index entry gives the transaction's place; its receipt is kept by height and
    /// index. An entry cut short, or a receipt missing, is reported as corruption, not a
    /// crash.
    @Test func aCommittedTransactionIsFoundWithItsReceiptKeptByHeight() async throws {
        let store = MemoryStore()
        let node = try chain.node(store: store)
        let transaction = chain.transaction(put("k", "v"), nonce: 0)
        try await node.submit(transaction)
        await node.produceBlock()
        await node.produceBlock()
        let outcome = try #require(try await node.transaction(transaction.id))
        #expect(outcome.receipt.status == .success && outcome.id == transaction.id)
        let key = StorePrefix.transaction.key(transaction.id.bytes)
        let entry = try #require(try store.get(key))
        #expect(entry.count == 12)
        let receiptKey = [StorePrefix.receipt.rawValue] + entry
        let receipt = try #require(try store.get(receiptKey))
        #expect(try Receipt(canonicalBytes: receipt) == outcome.receipt)

        var removed = WriteBatch()
        removed.delete(receiptKey)
        try store.write(removed, durable: true)
        await #expect(throws: NodeError.self) { try await node.transaction(transaction.id) }
        var cut = WriteBatch()
        cut.put(receiptKey, receipt)
        cut.put(key, Array(entry.prefix(11)))
        try store.write(cut, durable: true)
        await #expect(throws: NodeError.self) { try await node.transaction(transaction.id) }
    }

    /// A store of format 4 kept each receipt in its index entry: such entries are still
    /// read, the store is recorded as format 5 when a node opens it, and new entries are
    /// written apart.
    @Test func aFormat4StoreKeepsItsReceiptsInItsIndexEntries() async throws {
        let store = MemoryStore()
        _ = try await commitPuts(2, into: store)
        let node = try chain.node(store: store)
        let id = chain.transaction(put("k0", "v0"), nonce: 0).id
        let outcome = try #require(try await node.transaction(id))
        let key = StorePrefix.transaction.key(id.bytes)
        let location = try #require(try store.get(key))
        var downgrade = WriteBatch()
        downgrade.put(key, location + outcome.receipt.canonicalBytes)
        downgrade.delete([StorePrefix.receipt.rawValue] + location)
        downgrade.put(StorePrefix.metadata.key(Array("format".utf8)), [0, 0, 0, 0, 0, 0, 0, 4])
        try store.write(downgrade, durable: true)

        let reopened = try chain.node(store: store)
        #expect(try store.get(StorePrefix.metadata.key(Array("format".utf8))) == [0, 0, 0, 0, 0, 0, 0, 5])
        #expect(try await reopened.transaction(id)?.receipt == outcome.receipt)
        let next = chain.transaction(put("k9", "v9"), nonce: 2)
        try await reopened.submit(next)
        await reopened.produceBlock()
        await reopened.produceBlock()
        #expect(try await reopened.transaction(next.id)?.receipt.status == .success)
        #expect(try store.get(StorePrefix.transaction.key(next.id.bytes))?.count == 12)
    }

    @Test func sameTransactionsGiveSameRootsOnBothSuitesIndependently() async throws {
        for suite in [HashSuiteID.sha256, .sm3] {
            let chain = TestChain(hashSuite: suite)
            var roots: [Hash] = []
            for _ in 0..<2 {
                let node = try chain.node()
                try await node.submit(chain.transaction(put("x", "y"), nonce: 0))
                await node.produceBlock()
                roots.append(await node.status().stateRoot)
            }
            #expect(roots[0] == roots[1])
        }
    }

    @Test func waitersAreResumedOnCommitAndTimeOut() async throws {
        let node = try chain.node()
        let transaction = chain.transaction(put("w", "1"), nonce: 0)
        try await node.submit(transaction)
        async let waited = node.waitForCommit(transaction.id, timeout: .seconds(30))
        // Produce only once the waiter is registered, observed through the node itself.
        var produced = false
        for _ in 0..<1_000 where !produced {
            await Task.yield()
            produced = await node.produceBlock() != nil
        }
        #expect(try await waited?.receipt.status == .success)
        let never = chain.transaction(put("w", "2"), nonce: 9)
        #expect(try await node.waitForCommit(never.id, timeout: .milliseconds(20)) == nil)
    }
}
