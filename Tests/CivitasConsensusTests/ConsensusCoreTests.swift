import CivitasConsensus
import CivitasCore
import CivitasCrypto
import CivitasTesting
import Testing

@Suite struct SafetyRulesTests {
    func timeoutCertificate(round: UInt64, certifiedRounds: [UInt64]) -> TimeoutCertificate {
        let signature = try! Signature(scheme: .ed25519, bytes: [UInt8](repeating: 0, count: 64))
        let highest = QuorumCertificate(
            vote: VoteData(chainId: "c", epoch: 0, round: certifiedRounds.max()!, height: 1, blockHash: .zero), signatures: [])
        return TimeoutCertificate(
            epoch: 0, round: round,
            entries: certifiedRounds.enumerated().map { .init(validator: UInt16($0.offset), certifiedRound: $0.element, signature: signature) },
            highestCertificate: highest)
    }

    @Test func votesOncePerRoundAndOnlyForward() throws {
        var rules = SafetyRules(data: SafetyData(epoch: 0))
        let persisted = try rules.vote(blockRound: 1, certifiedRound: 0, timeout: nil)
        #expect(persisted.highestVotedRound == 1)
        #expect(throws: SafetyError.self) { try rules.vote(blockRound: 1, certifiedRound: 0, timeout: nil) }
        _ = try rules.vote(blockRound: 2, certifiedRound: 1, timeout: nil)
        #expect(throws: SafetyError.self) { try rules.vote(blockRound: 1, certifiedRound: 0, timeout: nil) }
        #expect(rules.data.highestCertifiedRound == 1)
    }

    @Test func aBlockMustExtendTheRoundJustBefore() throws {
        var rules = SafetyRules(data: SafetyData(epoch: 0))
        // Round 5 on a certificate of round 3, with no timeout for round 4: refused.
        #expect(throws: SafetyError.self) { try rules.vote(blockRound: 5, certifiedRound: 3, timeout: nil) }
        // With a timeout certificate for round 4 whose highest reported round is 3: allowed.
        _ = try rules.vote(blockRound: 5, certifiedRound: 3, timeout: timeoutCertificate(round: 4, certifiedRounds: [3, 2, 1]))
        // A timeout certificate reporting a higher certificate than the block extends: refused.
        var other = SafetyRules(data: SafetyData(epoch: 0))
        #expect(throws: SafetyError.self) {
            try other.vote(blockRound: 5, certifiedRound: 2, timeout: timeoutCertificate(round: 4, certifiedRounds: [3, 2, 1]))
        }
    }

    @Test func timeoutsNeverHideTheLock() throws {
        var rules = SafetyRules(data: SafetyData(epoch: 0))
        _ = try rules.vote(blockRound: 4, certifiedRound: 3, timeout: nil)
        // Reporting certificate round 2 while locked on 3 could hide a committed block.
        #expect(throws: SafetyError.self) { try rules.timeout(round: 5, certifiedRound: 2, timeout: timeoutCertificate(round: 4, certifiedRounds: [2, 2, 2])) }
        // Timing out of the round it voted in is allowed; voting after that is not.
        let persisted = try rules.timeout(round: 4, certifiedRound: 3, timeout: nil)
        #expect(persisted.highestVotedRound == 4)
        #expect(throws: SafetyError.self) { try rules.vote(blockRound: 4, certifiedRound: 3, timeout: nil) }
        #expect(throws: SafetyError.self) { try rules.timeout(round: 3, certifiedRound: 3, timeout: nil) }
    }

    @Test func aValidatorThatLostItsDataAbstainsButTimesOut() throws {
        var rules = SafetyRules(data: SafetyData(epoch: 0, abstainThroughRound: 10))
        #expect(throws: SafetyError.self) { try rules.vote(blockRound: 10, certifiedRound: 9, timeout: nil) }
        #expect(!rules.mayPropose(round: 10))
        _ = try rules.timeout(round: 10, certifiedRound: 9, timeout: nil)
        _ = try rules.vote(blockRound: 12, certifiedRound: 11, timeout: nil)
    }

    @Test func safetyDataRoundTrips() throws {
        let data = SafetyData(epoch: 3, highestVotedRound: 9, highestCertifiedRound: 7, abstainThroughRound: 2)
        #expect(try SafetyData(canonicalBytes: data.canonicalBytes) == data)
        #expect(throws: CodecError.self) { try SafetyData(canonicalBytes: data.canonicalBytes + [0]) }
    }
}

@Suite struct ConsensusCoreTests {
    let keys = (1...4).map { try! PrivateKey(scheme: .ed25519, rawRepresentation: [UInt8](repeating: UInt8($0), count: 32)) }
    let hasher = ChainHasher(.sha256)
    var validators: ValidatorSet {
        try! ValidatorSet(epoch: 0, validators: keys.enumerated().map { Validator(organisation: "o\($0.offset)", publicKey: $0.element.publicKey, power: 1) })
    }
    let root = BlockInfo(hash: ChainHasher(.sha256).hash([7]), height: 0, round: 0, parent: .zero, transactionCount: 0)

    func core(_ index: Int) -> Consensus {
        let config = ConsensusConfig(chainId: "c", validators: validators)
        return Consensus(
            config: config, hasher: hasher, key: keys[index], verifier: SignatureVerifiers(), safety: SafetyData(epoch: 0), root: root,
            rootCertificate: Consensus.rootCertificate(chainId: "c", epoch: 0, root: root))
    }

    func proposal(round: UInt64 = 1, proposer: Int = 1, signer: Int? = nil, transactions: UInt32 = 1) throws -> Proposal {
        let header = BlockHeader(
            chainId: "c", epoch: 0, height: 1, round: round, parent: root.hash, proposer: UInt16(proposer), timestampMilliseconds: 0,
            transactionCount: transactions, transactionsRoot: .zero, receiptsRoot: .zero, stateRoot: .zero)
        let hash = header.hash(using: hasher)
        return Proposal(
            block: Block(header: header, transactions: []), justify: Consensus.rootCertificate(chainId: "c", epoch: 0, root: root), timeout: nil,
            signature: try keys[signer ?? proposer].sign(Proposal.signingMessage(blockHash: hash)))
    }

    func refusals(_ actions: [ConsensusAction]) -> [ConsensusError.Code] {
        actions.compactMap { if case .refused(let error) = $0 { error.code } else { nil } }
    }

    @Test func theLeaderIsAskedToProposeAndAValidProposalIsValidatedThenVoted() throws {
        var leader = core(1)
        let start = leader.start()
        #expect(start.contains { if case .propose(let request) = $0 { request.round == 1 } else { false } })

        var follower = core(0)
        _ = follower.start()
        let proposal = try proposal()
        let actions = follower.handle(.message(.proposal(proposal), from: 1))
        #expect(actions == [.validate(proposal)])
        let validated = follower.handle(.validated(blockHash: proposal.header.hash(using: hasher), valid: true))
        // A block with transactions now waits for commit: the round timer is armed.
        #expect(validated.first == .scheduleTimeout(round: 1, milliseconds: 1_000))
        let voted = Array(validated.dropFirst())
        // The safety data is persisted before the vote goes out to every validator.
        guard voted.count == 2, case .persist(let data) = voted[0], case .broadcast(.vote(let vote)) = voted[1] else {
            Issue.record("unexpected \(voted)")
            return
        }
        #expect(data.highestVotedRound == 1)
        #expect(vote.data.commitHash == root.hash)
    }

    @Test func badProposalsAreRefusedWithReasons() throws {
        var follower = core(0)
        _ = follower.start()
        // Not the leader of round 1.
        #expect(refusals(follower.handle(.message(.proposal(try proposal(proposer: 2)), from: 2))) == [.notLeader])
        // Signed by someone else than the leader it names.
        #expect(refusals(follower.handle(.message(.proposal(try proposal(signer: 3)), from: 1))) == [.badSignature])
        // Another chain.
        var foreign = try proposal()
        foreign.block.header.chainId = "other"
        #expect(refusals(follower.handle(.message(.proposal(foreign), from: 1))) == [.wrongChain])
        // A round that its certificate does not justify.
        #expect(refusals(follower.handle(.message(.proposal(try proposal(round: 5, proposer: 1)), from: 1))) == [.malformed])
        // A block that fails execution is not voted for.
        let good = try proposal()
        _ = follower.handle(.message(.proposal(good), from: 1))
        #expect(refusals(follower.handle(.validated(blockHash: good.header.hash(using: hasher), valid: false))) == [.invalidBlock])
        // A second, different proposal in the same round is equivocation.
        #expect(refusals(follower.handle(.message(.proposal(try proposal(transactions: 2)), from: 1))) == [.equivocation])
    }

    @Test func votesFormACertificateAtQuorumAndDoubleVotesAreCaught() throws {
        var next = core(2)
        _ = next.start()
        let proposal = try proposal()
        let hash = proposal.header.hash(using: hasher)
        _ = next.handle(.message(.proposal(proposal), from: 1))
        _ = next.handle(.validated(blockHash: hash, valid: true))  // its own vote, kept locally
        let data = VoteData(chainId: "c", epoch: 0, round: 1, height: 1, blockHash: hash, commitHeight: 0, commitHash: root.hash)
        func vote(_ index: Int, _ data: VoteData) throws -> Vote {
            Vote(data: data, validator: UInt16(index), signature: try keys[index].sign(data.signingMessage))
        }
        // A forged signature is refused.
        let forged = Vote(data: data, validator: 0, signature: try keys[3].sign(data.signingMessage))
        #expect(refusals(next.handle(.message(.vote(forged), from: 0))) == [.badSignature])
        #expect(next.round == 1)
        _ = next.handle(.message(.vote(try vote(0, data)), from: 0))
        #expect(next.round == 1)
        // Validator 0 also votes for another block of round 1.
        var other = data
        other.blockHash = hasher.hash([1])
        #expect(refusals(next.handle(.message(.vote(try vote(0, other)), from: 0))) == [.equivocation])
        let actions = next.handle(.message(.vote(try vote(3, data)), from: 3))
        #expect(next.round == 2)
        #expect(next.highestCertificate.vote.blockHash == hash)
        // Leader of round 2 is validator 2 itself: it is asked to propose on the new certificate.
        #expect(actions.contains { if case .propose(let request) = $0 { request.round == 2 && request.parent.hash == hash } else { false } })
        // Quorum certified a block whose parent has the round before: the root is committed (already).
        #expect(next.root.hash == root.hash)
    }

    @Test func timeoutsFormACertificateAndMoveTheRound() throws {
        var node = core(0)
        _ = node.start()
        _ = node.handle(.pendingWork(true))
        let fired = node.handle(.timerFired(round: 1))
        #expect(fired.contains { if case .broadcast(.timeout(let timeout)) = $0 { timeout.round == 1 } else { false } })
        let rootCertificate = Consensus.rootCertificate(chainId: "c", epoch: 0, root: root)
        for index in [1, 2] {
            let message = TimeoutVote.signingMessage(chainId: "c", epoch: 0, round: 1, certifiedRound: 0)
            let timeout = TimeoutVote(
                epoch: 0, round: 1, highestCertificate: rootCertificate, lastRoundTimeout: nil, validator: UInt16(index),
                signature: try keys[index].sign(message))
            _ = node.handle(.message(.timeout(timeout), from: UInt16(index)))
        }
        #expect(node.round == 2)
        #expect(node.highestTimeout?.round == 1)
        // Messages for rounds far ahead are ignored instead of kept.
        let far = TimeoutVote(
            epoch: 0, round: 10_000, highestCertificate: rootCertificate, lastRoundTimeout: nil, validator: 3,
            signature: try keys[3].sign([0]))
        #expect(node.handle(.message(.timeout(far), from: 3)).isEmpty)
    }

    @Test func messagesRoundTripAndDecodeStrictly() throws {
        let proposal = try proposal(transactions: 0)
        let vote = Vote(data: VoteData(chainId: "c", epoch: 0, round: 1, height: 1, blockHash: .zero), validator: 2, signature: proposal.signature)
        let timeoutCertificate = TimeoutCertificate(
            epoch: 0, round: 3, entries: [.init(validator: 1, certifiedRound: 2, signature: proposal.signature)],
            highestCertificate: proposal.justify)
        let timeout = TimeoutVote(
            epoch: 0, round: 4, highestCertificate: proposal.justify, lastRoundTimeout: timeoutCertificate, validator: 1,
            signature: proposal.signature)
        var withTimeout = proposal
        withTimeout.timeout = timeoutCertificate
        for message in [ConsensusMessage.proposal(proposal), .proposal(withTimeout), .vote(vote), .timeout(timeout)] {
            let bytes = message.canonicalBytes
            #expect(try ConsensusMessage(canonicalBytes: bytes) == message)
            #expect(throws: CodecError.self) { try ConsensusMessage(canonicalBytes: bytes + [0]) }
            #expect(throws: CodecError.self) { try ConsensusMessage(canonicalBytes: Array(bytes.dropLast())) }
        }
        #expect(throws: CodecError.self) { try ConsensusMessage(canonicalBytes: [9]) }
        var unordered = timeoutCertificate
        unordered.entries = [.init(validator: 2, certifiedRound: 1, signature: proposal.signature), .init(validator: 1, certifiedRound: 1, signature: proposal.signature)]
        #expect(throws: CodecError.self) { try TimeoutCertificate(canonicalBytes: unordered.canonicalBytes) }
    }
}
