import CivitasCore
import CivitasCrypto

/// Checks facts about a chain offline, trusting only its genesis file: the epoch
/// hand-overs from the genesis validators on, a block header's commit evidence against
/// the validators of its epoch, and a state proof against the header.
public struct LightClient: Sendable {
    public let genesis: Genesis
    public let hasher: ChainHasher
    public let validators: ValidatorSet

    public init(genesis: Genesis) throws {
        try genesis.validate()
        self.genesis = genesis
        self.hasher = ChainHasher(genesis.hashSuite)
        self.validators = try genesis.validatorSet()
    }

    public struct VerifiedValue: Sendable, Equatable {
        public var height: UInt64
        public var key: [UInt8]
        public var value: [UInt8]?
        public var stateRoot: Hash
        public var blockHash: Hash
    }

    /// Verifies a proof document end to end, or throws saying which check failed.
    public func verify(_ document: ProofDocument) throws(ProofError) -> VerifiedValue {
        func decode<T: CanonicalDecodable>(_ hex: String, _ what: String) throws(ProofError) -> T {
            guard let raw = [UInt8](hex: hex) else { throw ProofError(.malformed, "\(what) is not hex") }
            do { return try T(canonicalBytes: raw) } catch { throw ProofError(.malformed, "\(what): \(error)") }
        }
        let header: BlockHeader = try decode(document.header, "header")
        let certificate: QuorumCertificate = try decode(document.certificate, "certificate")
        let proof: StateProof = try decode(document.proof, "proof")
        var commitHeaders: [BlockHeader] = []
        for hex in document.commitHeaders ?? [] { commitHeaders.append(try decode(hex, "commit header")) }
        var epochs: [EpochChange] = []
        for hex in document.epochs ?? [] { epochs.append(try decode(hex, "epoch hand-over")) }

        guard header.chainId == genesis.chainId else {
            throw ProofError(.wrongChain, "header is of chain \(header.chainId), genesis is \(genesis.chainId)")
        }
        let blockHash = header.hash(using: hasher)
        let set: ValidatorSet
        do {
            set = try EpochChange.validators(
                ofEpoch: header.epoch, from: validators, through: epochs, hasher: hasher, verifier: SignatureVerifiers()
            ).set
        } catch {
            switch error {
            case .invalid: throw ProofError(.badHandOver, error.description)
            case .unreached(_, let reached):
                throw ProofError(.unknownEpoch, "header is of epoch \(header.epoch); the document's hand-overs reach epoch \(reached)")
            }
        }
        do {
            try CommitEvidence(certificate: certificate, headers: commitHeaders).verify(
                commits: header, validators: set, hasher: hasher, verifier: SignatureVerifiers())
        } catch where error.code == .wrongBlock {
            throw ProofError(.certificateMismatch, error.message)
        } catch {
            throw ProofError(.badCertificate, error.description)
        }
        guard proof.verify(root: header.stateRoot, using: hasher) else {
            throw ProofError(.badProof, "the proof does not lead to the header's state root")
        }
        guard document.key == proof.key.hexString, document.value == proof.value?.hexString,
            document.height == header.height, document.stateRoot == header.stateRoot.hex
        else { throw ProofError(.fieldMismatch, "the document's readable fields disagree with its encoded proof") }
        return VerifiedValue(height: header.height, key: proof.key, value: proof.value, stateRoot: header.stateRoot, blockHash: blockHash)
    }
}

public struct ProofError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case malformed = "proof.malformed"
        case wrongChain = "proof.wrong_chain"
        case certificateMismatch = "proof.certificate_mismatch"
        case unknownEpoch = "proof.unknown_epoch"
        case badHandOver = "proof.bad_hand_over"
        case badCertificate = "proof.bad_certificate"
        case badProof = "proof.bad_proof"
        case fieldMismatch = "proof.field_mismatch"
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
