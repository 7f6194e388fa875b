/// One validator of an epoch, in the order the genesis (or the governance change that
/// set the epoch) lists them; its index in that order is what certificates name.
public struct Validator: Hashable, Sendable {
    public var organisation: String
    public var publicKey: PublicKey
    public var power: UInt64

    public init(organisation: String, publicKey: PublicKey, power: UInt64) {
        self.organisation = organisation
        self.publicKey = publicKey
        self.power = power
    }
}

public struct ValidatorSet: Hashable, Sendable {
    public let epoch: UInt64
    public let validators: [Validator]
    public let totalPower: UInt64

    public init(epoch: UInt64, validators: [Validator]) throws(CertificateError) {
        guard !validators.isEmpty, validators.count <= ProtocolLimits.validatorsMax else {
            throw CertificateError(.invalidValidatorSet, "a validator set holds 1 to \(ProtocolLimits.validatorsMax) validators")
        }
        var total: UInt64 = 0
        for validator in validators {
            guard validator.power > 0 else {
                throw CertificateError(.invalidValidatorSet, "validator of \(validator.organisation) has zero power")
            }
            let (sum, overflow) = total.addingReportingOverflow(validator.power)
            guard !overflow, sum <= UInt64.max / 3 else {
                throw CertificateError(.invalidValidatorSet, "total voting power overflows")
            }
            total = sum
        }
        guard Set(validators.map(\.publicKey)).count == validators.count else {
            throw CertificateError(.invalidValidatorSet, "a validator key appears twice")
        }
        self.epoch = epoch
        self.validators = validators
        self.totalPower = total
    }

    /// More than two thirds of the power: any two quorums share more than a third, so
    /// with at most f < n/3 Byzantine power they share an honest validator.
    public var quorumPower: UInt64 { totalPower * 2 / 3 + 1 }

    public func index(of key: PublicKey) -> UInt16? {
        validators.firstIndex { $0.publicKey == key }.map { UInt16($0) }
    }
}

/// What a validator signs when it votes for a block.
///
/// Besides the block it certifies, a vote names the block that a quorum of such votes
/// commits (`commitHash`, zero when the vote commits nothing): under the 2-chain rule,
/// certifying a block whose parent has the previous round commits the parent. A quorum
/// certificate with a commit is therefore a commit certificate for that block, which is
/// what light clients check.
public struct VoteData: Hashable, Sendable {
    public var chainId: String
    public var epoch: UInt64
    public var round: UInt64
    public var height: UInt64
    public var blockHash: Hash
    public var commitHeight: UInt64
    public var commitHash: Hash

    public init(
        chainId: String, epoch: UInt64, round: UInt64, height: UInt64, blockHash: Hash, commitHeight: UInt64 = 0,
        commitHash: Hash = .zero
    ) {
        self.chainId = chainId
        self.epoch = epoch
        self.round = round
        self.height = height
        self.blockHash = blockHash
        self.commitHeight = commitHeight
        self.commitHash = commitHash
    }

    public var commits: Bool { commitHash != .zero }

    /// Domain label `civitas.vote`, a zero byte, then the encoded vote data.
    public var signingMessage: [UInt8] {
        var writer = CanonicalWriter()
        writer.fixed(HashDomain.vote.prefix)
        encode(to: &writer)
        return writer.bytes
    }
}

extension VoteData: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.string(chainId, max: ProtocolLimits.chainIdBytesMax)
        writer.u64(epoch)
        writer.u64(round)
        writer.u64(height)
        writer.hash(blockHash)
        writer.u64(commitHeight)
        writer.hash(commitHash)
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        chainId = try reader.string("chain id", max: ProtocolLimits.chainIdBytesMax)
        epoch = try reader.u64("epoch")
        round = try reader.u64("round")
        height = try reader.u64("height")
        blockHash = try reader.hash("block hash")
        commitHeight = try reader.u64("commit height")
        commitHash = try reader.hash("commit hash")
        guard commitHash != .zero || commitHeight == 0 else {
            throw .invalid(field: "vote", reason: "a commit height without a commit hash")
        }
        guard commitHash == .zero || commitHeight <= height else {
            throw .invalid(field: "vote", reason: "commits height \(commitHeight) above the voted height \(height)")
        }
    }
}

/// Signatures of validators holding a quorum of an epoch's power over one block.
public struct QuorumCertificate: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var validator: UInt16
        public var signature: Signature
        public init(validator: UInt16, signature: Signature) {
            self.validator = validator
            self.signature = signature
        }
    }

    public var vote: VoteData
    /// Strictly increasing validator indexes, so the encoding is canonical.
    public var signatures: [Entry]

    public init(vote: VoteData, signatures: [Entry]) {
        self.vote = vote
        self.signatures = signatures.sorted { $0.validator < $1.validator }
    }

    /// Checks that the signers hold a quorum of `validators` and that every signature
    /// is valid. Returns nothing: a certificate either proves the block or it does not.
    public func verify(against validators: ValidatorSet, verifier: some SignatureVerifier) throws(CertificateError) {
        guard vote.epoch == validators.epoch else {
            throw CertificateError(.wrongEpoch, "certificate of epoch \(vote.epoch), validator set of epoch \(validators.epoch)")
        }
        let message = vote.signingMessage
        var power: UInt64 = 0
        var previous: Int = -1
        for entry in signatures {
            let index = Int(entry.validator)
            guard index > previous else { throw CertificateError(.duplicateSigner, "validator \(index) listed twice or out of order") }
            previous = index
            guard index < validators.validators.count else {
                throw CertificateError(.unknownSigner, "validator index \(index) is outside the set")
            }
            let validator = validators.validators[index]
            guard verifier.isValid(entry.signature, of: message, by: validator.publicKey) else {
                throw CertificateError(.badSignature, "signature of validator \(index) (\(validator.organisation)) is invalid")
            }
            power += validator.power
        }
        guard power >= validators.quorumPower else {
            throw CertificateError(.noQuorum, "signers hold \(power) of \(validators.totalPower) power, quorum is \(validators.quorumPower)")
        }
    }
}

extension QuorumCertificate: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.encode(vote)
        writer.list(signatures, max: ProtocolLimits.validatorsMax) { writer, entry in
            writer.u16(entry.validator)
            writer.encode(entry.signature)
        }
    }

    public init(from reader: inout CanonicalReader) throws(CodecError) {
        vote = try reader.decode(VoteData.self)
        signatures = try reader.list("certificate signatures", max: ProtocolLimits.validatorsMax) {
            (reader: inout CanonicalReader) throws(CodecError) in
            Entry(validator: try reader.u16("validator index"), signature: try reader.decode(Signature.self))
        }
        for (earlier, later) in zip(signatures, signatures.dropFirst()) where earlier.validator >= later.validator {
            throw .invalid(field: "certificate signatures", reason: "validator indexes must strictly increase")
        }
    }
}

public struct CertificateError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case invalidValidatorSet = "certificate.invalid_validator_set"
        case wrongEpoch = "certificate.wrong_epoch"
        case duplicateSigner = "certificate.duplicate_signer"
        case unknownSigner = "certificate.unknown_signer"
        case badSignature = "certificate.bad_signature"
        case noQuorum = "certificate.no_quorum"
        case wrongBlock = "certificate.wrong_block"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public var description: String { "\(code.rawValue): \(message)" }
}
