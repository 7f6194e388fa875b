import CivitasCore
import CivitasStorage

/// What subscribers to the event stream receive for each committed block.
public struct ChainEvent: Sendable {
    public struct TransactionEvents: Sendable {
        public var transactionId: Hash
        public var success: Bool
        public var events: [Event]
    }

    public var height: UInt64
    public var blockHash: Hash
    public var stateRoot: Hash
    /// The block's header time (its proposer's clock) and its proposer's index in the
    /// epoch's validator set: with them a client splits its wait into before and after
    /// the proposal.
    public var timestampMilliseconds: UInt64
    public var proposer: UInt16
    public var transactionCount: Int
    public var transactions: [TransactionEvents]
}

/// A committed transaction with where it is and what it did.
public struct TransactionOutcome: Sendable {
    public var transaction: SignedTransaction
    public var id: Hash
    public var location: TransactionLocation
    public var blockHash: Hash
    public var receipt: Receipt
}

/// A value (or its absence) with everything needed to check it offline: the proof, the
/// block header whose state root it is checked against, the evidence that commits that
/// block, and the epoch hand-overs that say which validators signed it.
public struct StateProofBundle: Sendable {
    public var header: BlockHeader
    public var evidence: CommitEvidence
    public var proof: StateProof
    public var epochs: [EpochChange]
}

public struct NodeStatus: Sendable {
    public var chainId: String
    public var hashSuite: HashSuiteID
    public var height: UInt64
    public var blockHash: Hash
    public var stateRoot: Hash
    public var mempoolTransactions: Int
    public var mempoolBytes: Int
    public var validatorIndex: UInt16?
    public var genesisHash: Hash
    /// The consensus round this node is in.
    public var round: UInt64
    /// The epoch of the current validator set.
    public var epoch: UInt64
    /// The store's background work still owed, if its store does such work.
    public var storage: StoreBacklog?
}
