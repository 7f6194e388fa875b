/// The validator set of the current epoch lives in the state under this key (canonical
/// encoding, epoch included), so a state proof can show which set an epoch has.
extension ValidatorSet {
    public static let stateKey: [UInt8] = Array("gov/validators".utf8)
}

extension ValidatorSet: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.u64(epoch)
        writer.list(validators, max: ProtocolLimits.validatorsMax) { writer, validator in
            writer.string(validator.organisation, max: ProtocolLimits.organisationIdBytesMax)
            writer.encode(validator.publicKey)
            writer.u64(validator.power)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        let epoch = try reader.u64("epoch")
        let validators = try reader.list("validators", max: ProtocolLimits.validatorsMax) { (reader: inout CanonicalReader) throws(CodecError) in
            Validator(
                organisation: try reader.string("organisation", max: ProtocolLimits.organisationIdBytesMax),
                publicKey: try reader.decode(PublicKey.self), power: try reader.u64("power"))
        }
        do { try self.init(epoch: epoch, validators: validators) } catch {
            throw .invalid(field: "validator set", reason: error.message)
        }
    }
}

/// Evidence that a block is committed: a certificate that commits it, or commits a
/// descendant reached from it through `headers` (each the child of the one before).
/// Several blocks commit under one certificate when rounds time out, and the last block
/// of an epoch commits through the empty blocks that follow it.
public struct CommitEvidence: Hashable, Sendable {
    public var certificate: QuorumCertificate
    public var headers: [BlockHeader]

    public static let headersMax = 64

    public init(certificate: QuorumCertificate, headers: [BlockHeader] = []) {
        self.certificate = certificate
        self.headers = headers
    }

    /// Checks that the evidence commits `header` and that the certificate holds a quorum
    /// of `validators` (the set of the certificate's epoch).
    public func verify(
        commits header: BlockHeader, validators: ValidatorSet, hasher: some HashFunction, verifier: some SignatureVerifier
    ) throws(CertificateError) {
        var cursor = header.hash(using: hasher)
        var height = header.height
        for next in headers {
            guard next.parent == cursor, next.height == height + 1, next.chainId == header.chainId else {
                throw CertificateError(.wrongBlock, "the headers after block \(header.height) do not form its chain")
            }
            cursor = next.hash(using: hasher)
            height = next.height
        }
        guard certificate.vote.commitHash == cursor, certificate.vote.commitHeight == height,
            certificate.vote.chainId == header.chainId
        else { throw CertificateError(.wrongBlock, "the certificate does not commit block \(header.height)") }
        try certificate.verify(against: validators, verifier: verifier)
    }
}

extension CommitEvidence: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(certificate)
        writer.list(headers, max: Self.headersMax) { $0.encode($1) }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        certificate = try reader.decode(QuorumCertificate.self)
        headers = try reader.list("commit headers", max: Self.headersMax) { (reader: inout CanonicalReader) throws(CodecError) in
            try reader.decode(BlockHeader.self)
        }
    }
}

/// The hand-over from one epoch to the next: the last block of the old epoch, the
/// evidence that the old validators committed it, and a proof that its state names the
/// new validator set. Verified in order from the genesis set, a chain of these tells a
/// light client (or a node catching up) which set certifies each later block.
public struct EpochChange: Hashable, Sendable {
    /// The new set; its `epoch` is the old one plus one.
    public var validators: ValidatorSet
    public var lastHeader: BlockHeader
    public var evidence: CommitEvidence
    public var validatorsProof: StateProof

    public init(validators: ValidatorSet, lastHeader: BlockHeader, evidence: CommitEvidence, validatorsProof: StateProof) {
        self.validators = validators
        self.lastHeader = lastHeader
        self.evidence = evidence
        self.validatorsProof = validatorsProof
    }

    /// The first height of the new epoch.
    public var firstHeight: UInt64 { lastHeader.height + 1 }

    /// Checks the hand-over against the set of the epoch it ends; returns the new set.
    public func verify(
        from previous: ValidatorSet, hasher: some HashFunction, verifier: some SignatureVerifier
    ) throws(CertificateError) -> ValidatorSet {
        guard lastHeader.epoch == previous.epoch, validators.epoch == previous.epoch + 1 else {
            throw CertificateError(.wrongEpoch, "hand-over to epoch \(validators.epoch) from a block of epoch \(lastHeader.epoch), expected \(previous.epoch)")
        }
        guard evidence.headers.allSatisfy({ $0.epoch == previous.epoch && $0.transactionCount == 0 }) else {
            throw CertificateError(.wrongBlock, "blocks after the last of an epoch must be empty and of that epoch")
        }
        try evidence.verify(commits: lastHeader, validators: previous, hasher: hasher, verifier: verifier)
        guard validatorsProof.key == ValidatorSet.stateKey, validatorsProof.value == validators.canonicalBytes,
            validatorsProof.verify(root: lastHeader.stateRoot, using: hasher)
        else { throw CertificateError(.invalidValidatorSet, "the state of block \(lastHeader.height) does not name the new validator set") }
        return validators
    }
}

/// Why a chain of hand-overs does not lead to an epoch's validators.
public enum HandOverError: Error, Sendable, CustomStringConvertible {
    /// The hand-over to `epoch` does not check against the set before it.
    case invalid(epoch: UInt64, CertificateError)
    /// The hand-overs end before `wanted`, at `reached`.
    case unreached(wanted: UInt64, reached: UInt64)

    public var description: String {
        switch self {
        case .invalid(let epoch, let error): "hand-over to epoch \(epoch): \(error)"
        case .unreached(let wanted, let reached): "the hand-overs reach epoch \(reached), not \(wanted)"
        }
    }
}

extension EpochChange {
    /// The validators of `epoch`: `changes` checked in order from the genesis set until
    /// that epoch is reached. Also returns how many hand-overs that took; the rest are
    /// not read.
    public static func validators(
        ofEpoch epoch: UInt64, from genesis: ValidatorSet, through changes: [EpochChange], hasher: some HashFunction,
        verifier: some SignatureVerifier
    ) throws(HandOverError) -> (set: ValidatorSet, used: Int) {
        var set = genesis
        var used = 0
        while set.epoch < epoch, used < changes.count {
            let change = changes[used]
            do { set = try change.verify(from: set, hasher: hasher, verifier: verifier) } catch {
                throw .invalid(epoch: change.validators.epoch, error)
            }
            used += 1
        }
        guard set.epoch == epoch else { throw .unreached(wanted: epoch, reached: set.epoch) }
        return (set, used)
    }
}

extension EpochChange: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(validators)
        writer.encode(lastHeader)
        writer.encode(evidence)
        writer.encode(validatorsProof)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        validators = try reader.decode(ValidatorSet.self)
        lastHeader = try reader.decode(BlockHeader.self)
        evidence = try reader.decode(CommitEvidence.self)
        validatorsProof = try reader.decode(StateProof.self)
    }
}
