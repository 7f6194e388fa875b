import CivitasCore
import CivitasCrypto
import OrderedCollections

public struct MempoolLimits: Sendable, Codable, Equatable {
    public var transactionsMax: Int
    public var bytesMax: Int
    /// How far ahead of its account nonce a sender may queue transactions.
    public var senderTransactionsMax: Int

    public init(transactionsMax: Int = 50_000, bytesMax: Int = 64 << 20, senderTransactionsMax: Int = 1_024) {
        self.transactionsMax = transactionsMax
        self.bytesMax = bytesMax
        self.senderTransactionsMax = senderTransactionsMax
    }
}

/// Verified transactions waiting for a block, per sender in nonce order.
///
/// Bounded in count and bytes; overload is refused, never absorbed. Senders are served
/// in the order they first arrived, so one busy sender cannot starve the others.
public struct Mempool: Sendable {
    public let limits: MempoolLimits
    private var senders: OrderedDictionary<Address, [UInt64: VerifiedTransaction]> = [:]
    private var ids: [Hash: Slot] = [:]
    public private(set) var byteCount = 0

    struct Slot: Sendable {
        var sender: Address
        var nonce: UInt64
    }

    public init(limits: MempoolLimits) { self.limits = limits }

    public var count: Int { ids.count }
    public var isEmpty: Bool { ids.isEmpty }
    public func contains(_ id: Hash) -> Bool { ids[id] != nil }

    /// The verified transaction with this id, if pending: a block that carries it needs
    /// no second signature check.
    public func transaction(_ id: Hash) -> VerifiedTransaction? {
        guard let slot = ids[id] else { return nil }
        return senders[slot.sender]?[slot.nonce]
    }

    /// Admits `transaction` from `sender` whose committed account nonce is `accountNonce`.
    /// Chain-level checks (chain id, scheme, membership, expiry, gas) are the caller's.
    public mutating func admit(
        _ transaction: VerifiedTransaction, sender: Address, accountNonce: UInt64
    ) throws(TransactionError) {
        let nonce = transaction.body.nonce
        guard ids[transaction.id] == nil else { throw TransactionError(.duplicate, "transaction \(transaction.id) is already pending") }
        guard nonce >= accountNonce else {
            throw TransactionError(.nonceTooLow, "nonce \(nonce) is already used; the account's next nonce is \(accountNonce)")
        }
        guard nonce - accountNonce < UInt64(limits.senderTransactionsMax) else {
            throw TransactionError(.nonceTooHigh, "nonce \(nonce) is more than \(limits.senderTransactionsMax) ahead of the account's \(accountNonce)")
        }
        // Read in place and written through the dictionary's own storage: a copy of the
        // sender's queue per admission made a batch from one sender quadratic.
        let queued = senders[sender]?.count ?? 0
        guard senders[sender]?[nonce] == nil else {
            throw TransactionError(.duplicate, "a transaction with nonce \(nonce) from this sender is already pending")
        }
        guard queued < limits.senderTransactionsMax else {
            throw TransactionError(.senderQueueFull, "sender has \(queued) pending transactions")
        }
        guard ids.count < limits.transactionsMax, byteCount + transaction.encodedSize <= limits.bytesMax else {
            throw TransactionError(.mempoolFull, "mempool holds \(ids.count) transactions / \(byteCount) bytes; retry later")
        }
        senders[sender, default: [:]][nonce] = transaction
        ids[transaction.id] = Slot(sender: sender, nonce: nonce)
        byteCount += transaction.encodedSize
    }

    /// Up to `countMax` transactions that can execute in order now: for each sender,
    /// the run of consecutive nonces starting at its account nonce.
    public func reap(countMax: Int, gasMax: UInt64, accountNonce: (Address) -> UInt64) -> [VerifiedTransaction] {
        var picked: [VerifiedTransaction] = []
        var gas: UInt64 = 0
        outer: for (sender, queue) in senders {
            var nonce = accountNonce(sender)
            while let transaction = queue[nonce] {
                guard picked.count < countMax else { break outer }
                let (total, overflow) = gas.addingReportingOverflow(transaction.body.gasLimit)
                if overflow || total > gasMax { break outer }
                gas = total
                picked.append(transaction)
                nonce += 1
            }
        }
        return picked
    }

    /// Drops what a committed block made stale: transactions whose nonce is now used
    /// (included or replaced) and those that expire before `nextHeight`.
    public mutating func prune(senders touched: some Sequence<Address>, nextHeight: UInt64, accountNonce: (Address) -> UInt64) {
        for sender in touched {
            let floor = accountNonce(sender)
            drop(from: sender) { nonce, transaction in nonce < floor || transaction.body.expiryHeight < nextHeight }
        }
    }

    /// Drops expired transactions of every sender; run now and then, not per block.
    public mutating func pruneExpired(nextHeight: UInt64) {
        for sender in Array(senders.keys) {
            drop(from: sender) { _, transaction in transaction.body.expiryHeight < nextHeight }
        }
    }

    private mutating func drop(from sender: Address, where stale: (UInt64, VerifiedTransaction) -> Bool) {
        guard let index = senders.index(forKey: sender) else { return }
        let dropped = senders.values[index].filter { stale($0.key, $0.value) }
        guard !dropped.isEmpty else { return }
        for (nonce, transaction) in dropped {
            senders.values[index][nonce] = nil
            remove(transaction)
        }
        if senders.values[index].isEmpty { senders.remove(at: index) }
    }

    private mutating func remove(_ transaction: VerifiedTransaction) {
        ids[transaction.id] = nil
        byteCount -= transaction.encodedSize
    }
}
