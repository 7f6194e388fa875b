import CivitasCore
import CivitasTesting
import Testing

@Suite struct CodecTests {
    let chain = TestChain()

    func roundTrip<T: CanonicalCodable & Equatable>(_ value: T) throws {
        let bytes = value.canonicalBytes
        #expect(try T(canonicalBytes: bytes) == value)
        // Strictness: one more byte is an error, one fewer is truncation.
        #expect(throws: CodecError.trailingBytes(count: 1)) { try T(canonicalBytes: bytes + [0]) }
        #expect(throws: CodecError.self) { try T(canonicalBytes: Array(bytes.dropLast())) }
    }

    var sampleTransaction: SignedTransaction {
        chain.transaction(Call(module: "kv", method: "put", arguments: [1, 2, 3]), nonce: 7).transaction
    }

    @Test func transactionRoundTrips() throws {
        try roundTrip(sampleTransaction)
        try roundTrip(sampleTransaction.body)
        try roundTrip(sampleTransaction.body.call)
    }

    @Test func headerBlockReceiptCertificateProofRoundTrip() throws {
        let header = BlockHeader(
            chainId: "c", epoch: 1, height: 2, round: 3, parent: Hash(bytes: [UInt8](repeating: 9, count: 32)), proposer: 4,
            timestampMilliseconds: 5, transactionCount: 1, transactionsRoot: .zero, receiptsRoot: .zero, stateRoot: .zero)
        try roundTrip(header)
        try roundTrip(Block(header: header, transactions: [sampleTransaction]))
        let receipt = Receipt(
            transactionId: .zero, status: .failure(code: "x.y", message: "why"), gasUsed: 10,
            events: [Event(module: "kv", name: "put", attributes: [.init("k", "v")])])
        try roundTrip(receipt)
        let signature = try chain.validator.sign([1])
        let certificate = QuorumCertificate(
            vote: VoteData(chainId: "c", epoch: 0, round: 1, height: 1, blockHash: .zero),
            signatures: [.init(validator: 0, signature: signature)])
        try roundTrip(certificate)
        try roundTrip(StateProof(key: [1], value: [2], otherLeaf: nil, siblings: [.zero]))
        try roundTrip(StateProof(key: [1], value: nil, otherLeaf: .init(keyHash: .zero, valueHash: .zero), siblings: []))
        try roundTrip(chain.validator.publicKey)
        try roundTrip(signature)
    }

    @Test func blockRefusesCountMismatch() throws {
        var header = BlockHeader(
            chainId: "c", epoch: 0, height: 1, round: 1, parent: .zero, proposer: 0, timestampMilliseconds: 0,
            transactionCount: 2, transactionsRoot: .zero, receiptsRoot: .zero, stateRoot: .zero)
        let bytes = Block(header: header, transactions: [sampleTransaction]).canonicalBytes
        #expect(throws: CodecError.self) { try Block(canonicalBytes: bytes) }
        header.transactionCount = 1
        _ = try Block(canonicalBytes: Block(header: header, transactions: [sampleTransaction]).canonicalBytes)
    }

    @Test func unknownTagsAreRefused() {
        var bytes = sampleTransaction.canonicalBytes
        bytes[0] = 2  // transaction version
        #expect(throws: CodecError.unknownTag(field: "transaction version", tag: 2)) { try SignedTransaction(canonicalBytes: bytes) }
        var scheme = sampleTransaction.body.sender.canonicalBytes
        scheme[0] = 0x7f
        #expect(throws: CodecError.unknownTag(field: "public key scheme", tag: 0x7f)) { try PublicKey(canonicalBytes: scheme) }
    }

    @Test func oversizeLengthsAreRefused() {
        var writer = CanonicalWriter()
        writer.u32(UInt32(ProtocolLimits.chainIdBytesMax + 1))
        var reader = CanonicalReader(writer.bytes + [UInt8](repeating: 0x61, count: 65))
        #expect(throws: CodecError.oversize(field: "chain id", length: 65, max: 64)) {
            try reader.string("chain id", max: ProtocolLimits.chainIdBytesMax)
        }
        let huge = [UInt8](repeating: 0, count: ProtocolLimits.transactionBytesMax + 1)
        #expect(throws: CodecError.self) { try SignedTransaction(wire: huge) }
    }

    @Test func invalidValuesAreRefused() {
        var reader = CanonicalReader([2])
        #expect(throws: CodecError.self) { try reader.bool("flag") }
        var text = CanonicalReader([0, 0, 0, 2, 0xff, 0xfe])
        #expect(throws: CodecError.self) { try text.string("s", max: 10) }
        // A list count larger than the remaining input must not allocate for it.
        var list = CanonicalReader([0, 0, 0, 200])
        #expect(throws: CodecError.truncated(field: "items")) {
            try list.list("items", max: 1_000) { (r: inout CanonicalReader) throws(CodecError) in try r.u8("item") }
        }
        // Certificates list signers in strictly increasing order.
        var writer = CanonicalWriter()
        writer.string("c", max: 64)
        writer.u64(0); writer.u64(0); writer.u64(0)
        writer.hash(.zero)
        writer.u32(2)
        let signature = try! chain.validator.sign([1])
        for _ in 0..<2 {
            writer.u16(0)
            writer.encode(signature)
        }
        #expect(throws: CodecError.self) { try QuorumCertificate(canonicalBytes: writer.bytes) }
    }

    @Test func everyMutationOfATransactionIsRefusedOrDifferent() throws {
        // Flipping any byte either fails to decode or yields a different transaction:
        // the encoding is a bijection on valid values.
        let bytes = sampleTransaction.canonicalBytes
        for index in stride(from: 0, to: bytes.count, by: 7) {
            var mutated = bytes
            mutated[index] ^= 0x01
            if let decoded = try? SignedTransaction(canonicalBytes: mutated) {
                #expect(decoded != sampleTransaction)
            }
        }
    }

    @Test func hexRoundTrips() {
        let raw: [UInt8] = [0, 1, 0xab, 0xff]
        #expect(raw.hexString == "0001abff")
        #expect([UInt8](hex: "0x0001ABff") == raw)
        #expect([UInt8](hex: "abc") == nil)
        #expect([UInt8](hex: "zz") == nil)
    }

    @Test func hashBitsAndOrder() {
        let hash = Hash(bytes: [0x80] + [UInt8](repeating: 0, count: 30) + [0x01])
        #expect(hash.bit(0))
        #expect(!hash.bit(1))
        #expect(hash.bit(255))
        #expect(Hash.zero < hash)
        #expect(Hash(hex: hash.hex) == hash)
    }
}

@Suite struct GenesisTests {
    @Test func validatesAndRoundTripsThroughJSON() throws {
        let genesis = TestChain().genesis
        try genesis.validate()
        let data = try JSONEncoder().encode(genesis)
        #expect(try JSONDecoder().decode(Genesis.self, from: data) == genesis)
    }

    @Test func refusesBadGenesis() {
        var genesis = TestChain().genesis
        genesis.chainId = "bad chain!"
        #expect(throws: GenesisError.self) { try genesis.validate() }
        genesis = TestChain(schemes: [.sm2]).genesis
        #expect(throws: GenesisError.self) { try genesis.validate() }  // ed25519 keys, sm2 only
        genesis = TestChain().genesis
        genesis.organisations[0].members.append(genesis.organisations[0].admins[0])
        #expect(throws: GenesisError.self) { try genesis.validate() }  // duplicate key
        genesis = TestChain().genesis
        genesis.organisations[0].validators[0].power = 0
        #expect(throws: GenesisError.self) { try genesis.validate() }
    }

    @Test func unknownHashSuiteInJSONIsAClearError() {
        let json = #"{"chainId":"c","hashSuite":"md5","signatureSchemes":["ed25519"],"organisations":[]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Genesis.self, from: Data(json.utf8)) }
    }
}

import Foundation

@Suite struct HashBytesTests {
    @Test func bytesHexAndOrderAgree() throws {
        var random = SeededRandom(seed: 7)
        var hashes: [Hash] = []
        for _ in 0..<200 {
            let bytes = (0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let hash = Hash(bytes: bytes)
            #expect(hash.bytes == bytes)
            #expect(Hash(bytes: bytes[...]) == hash)
            #expect(Hash(hex: hash.hex) == hash)
            hashes.append(hash)
        }
        // Order is the order of the bytes, most significant first.
        let byHash = hashes.sorted()
        let byBytes = hashes.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        #expect(byHash == byBytes)
        #expect(Hash(bytes: [UInt8](repeating: 0, count: 31) + [1]).bit(255))
    }
}
