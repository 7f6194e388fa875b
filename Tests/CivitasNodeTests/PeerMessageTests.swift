import CivitasConsensus
import CivitasCore
import CivitasState
import CivitasModules
import CivitasNode
import CivitasTesting
import Testing

@Suite struct PeerMessageTests {
    let chain = TestChain()

    @Test func peerMessagesRoundTripAndDecodeStrictly() throws {
        let transaction = chain.transaction(
            Call(module: "kv", method: "put", arguments: KVModule.putArguments(key: [1], value: [2])), nonce: 0
        ).transaction
        let header = BlockHeader(
            chainId: chain.genesis.chainId, epoch: 0, height: 1, round: 1, parent: .zero, proposer: 0, timestampMilliseconds: 0,
            transactionCount: 1, transactionsRoot: .zero, receiptsRoot: .zero, stateRoot: .zero)
        let block = Block(header: header, transactions: [transaction])
        let certificate = QuorumCertificate(
            vote: VoteData(chainId: chain.genesis.chainId, epoch: 0, round: 2, height: 2, blockHash: .zero, commitHeight: 1, commitHash: .zero.successorForTests),
            signatures: [.init(validator: 0, signature: try chain.validator.sign([1]))])
        let messages: [PeerMessage] = [
            .transactions([transaction, transaction]),
            .syncRequest(SyncRequest(committedHeight: 7, blocksMax: 256)),
            .syncResponse(
                SyncResponse(
                    committed: [block], commitCertificates: [certificate], commitEvidence: CommitEvidence(certificate: certificate), certified: [.init(block: block, certificate: certificate)])),
            .syncResponse(
                SyncResponse(
                    committed: [block], commitCertificates: [certificate],
                    commitEvidence: CommitEvidence(certificate: certificate, headers: [header, header]), certified: [])),
            .syncResponse(SyncResponse(committed: [], commitCertificates: [], commitEvidence: nil, certified: [])),
            .snapshotRequest(SnapshotRequest(height: 0, after: nil)),
            .snapshotRequest(SnapshotRequest(height: 12, after: .zero.successorForTests)),
            .snapshotChunk(
                SnapshotChunk(
                    height: 1, head: SnapshotHead(block: block, receipts: [], evidence: CommitEvidence(certificate: certificate), epochs: []),
                    entries: [.init(key: [1, 2], value: [3])], done: false)),
            .snapshotChunk(SnapshotChunk(height: 0, head: nil, entries: [], done: true)),
        ]
        for message in messages {
            let bytes = message.canonicalBytes
            #expect(try PeerMessage(canonicalBytes: bytes) == message)
            #expect(throws: CodecError.self) { try PeerMessage(canonicalBytes: bytes + [0]) }
            #expect(throws: CodecError.self) { try PeerMessage(canonicalBytes: Array(bytes.dropLast())) }
        }
        #expect(throws: CodecError.self) { try PeerMessage(canonicalBytes: [9]) }
        // Committed blocks without the certificate that commits them are refused.
        let uncertified = SyncResponse(committed: [block], commitCertificates: [certificate], commitEvidence: nil, certified: [])
        #expect(throws: CodecError.self) { try PeerMessage(canonicalBytes: PeerMessage.syncResponse(uncertified).canonicalBytes) }
        // Each committed block comes with its own certificate.
        let short = SyncResponse(
            committed: [block], commitCertificates: [], commitEvidence: CommitEvidence(certificate: certificate), certified: [])
        #expect(throws: CodecError.self) { try PeerMessage(canonicalBytes: PeerMessage.syncResponse(short).canonicalBytes) }
    }
}

extension Hash {
    fileprivate var successorForTests: Hash { Hash(bytes: [UInt8](repeating: 1, count: 32)) }
}
