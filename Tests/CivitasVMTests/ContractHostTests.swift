import CivitasCore
import CivitasCrypto
import CivitasModules
import CivitasTesting
import CivitasVM
import Foundation
import Testing
import WAT

/// Contracts written by hand in WebAssembly text, run through the executor on a real
/// state tree: each host function, each limit, and what a hostile contract gets.
@Suite struct ContractHostTests {
    /// A contract skeleton: every host import, one page of memory, a bump allocator
    /// from byte 4096, and `civitas_call` with the given body. Method names are told
    /// apart by their first byte (`$first`).
    static func module(_ body: String, functions: String = "", data: String = "", memory: String = "1") throws -> [UInt8] {
        try wat2wasm(
            """
            (module
              (import "env" "storage_get" (func $storage_get (param i32 i32 i32 i32) (result i32)))
              (import "env" "storage_put" (func $storage_put (param i32 i32 i32 i32)))
              (import "env" "storage_delete" (func $storage_delete (param i32 i32)))
              (import "env" "caller" (func $caller (param i32)))
              (import "env" "origin" (func $origin (param i32)))
              (import "env" "self_address" (func $self_address (param i32)))
              (import "env" "block_height" (func $block_height (result i64)))
              (import "env" "emit_event" (func $emit_event (param i32 i32 i32 i32)))
              (import "env" "return_data" (func $return_data (param i32 i32)))
              (import "env" "revert" (func $revert (param i32 i32)))
              (import "env" "hash_sha256" (func $hash_sha256 (param i32 i32 i32)))
              (import "env" "hash_sm3" (func $hash_sm3 (param i32 i32 i32)))
              (import "env" "log" (func $log (param i32 i32)))
              (import "env" "call_module" (func $call_module (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
              (memory (export "memory") \(memory))
              (global $heap (mut i32) (i32.const 4096))
              (func (export "civitas_alloc") (param $n i32) (result i32)
                (local $p i32)
                (local.set $p (global.get $heap))
                (global.set $heap (i32.add (global.get $heap) (local.get $n)))
                (local.get $p))
              \(functions)
              (func (export "civitas_call") (param $m i32) (param $ml i32) (param $a i32) (param $al i32) (result i32)
                (local $first i32) (local $n i32)
                (local.set $first (i32.load8_u (local.get $m)))
                \(body)
                (i32.const 0))
              \(data))
            """)
    }

    /// Storage: `p` puts the arguments under "key"; `g` returns what is there (or
    /// status 1 when nothing is); `d` deletes it.
    static let storage = """
        (if (i32.eq (local.get $first) (i32.const 112))
          (then (call $storage_put (i32.const 16) (i32.const 3) (local.get $a) (local.get $al))))
        (if (i32.eq (local.get $first) (i32.const 100))
          (then (call $storage_delete (i32.const 16) (i32.const 3))))
        (if (i32.eq (local.get $first) (i32.const 103))
          (then
            (local.set $n (call $storage_get (i32.const 16) (i32.const 3) (i32.const 256) (i32.const 1024)))
            (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))
            (call $return_data (i32.const 256) (local.get $n))))
        """

    let chain: ExecutionChain
    var deployer: PrivateKey { chain.admins[0] }

    init() throws { chain = try ExecutionChain() }

    // MARK: Helpers

    func deploy(
        _ code: [UInt8], policy: UpgradePolicy = .owner, by key: PrivateKey? = nil, initArguments: [UInt8]? = nil,
        gasLimit: UInt64 = 50_000_000
    ) throws -> (Address, Receipt) {
        let key = key ?? deployer
        let sender = chain.address(key)
        let sequence = try StateKeys.decodeU64(chain.state.value(for: ContractKeys.deployCounter(sender)))
        let receipt = try chain.call(
            key,
            Call(module: "contract", method: "deploy", arguments: ContractModule.deployArguments(code: code, policy: policy, initArguments: initArguments)),
            gasLimit: gasLimit)
        return (ContractModule.address(deployer: sender, sequence: sequence, hasher: chain.hasher), receipt)
    }

    func deployed(_ code: [UInt8]) throws -> Address {
        let (address, receipt) = try deploy(code)
        try #require(receipt.status == .success, "deploy failed: \(receipt.status)")
        return address
    }

    func call(_ contract: Address, _ method: String, _ arguments: [UInt8] = [], by key: PrivateKey? = nil, gasLimit: UInt64 = 10_000_000)
        throws -> Receipt
    {
        try chain.call(
            key ?? deployer,
            Call(module: "contract", method: "call", arguments: ContractModule.callArguments(contract: contract, method: method, arguments: arguments)),
            gasLimit: gasLimit)
    }

    func query(_ contract: Address, _ method: String, _ arguments: [UInt8] = [], gasLimit: UInt64 = 10_000_000) -> ContractQueryResult {
        chain.executor.query(
            contract: contract, method: method, arguments: arguments, caller: chain.address(deployer), gasLimit: gasLimit,
            height: chain.height, base: chain.state)
    }

    static func failure(_ receipt: Receipt) -> (code: String, message: String)? {
        if case .failure(let code, let message) = receipt.status { return (code, message) }
        return nil
    }

    func stored(_ contract: Address, _ key: String) throws -> [UInt8]? {
        try chain.state.value(for: ContractKeys.storage(contract, Array(key.utf8)))
    }

    // MARK: Host functions

    @Test func storageWritesLandInTheStateTreeUnderTheContractAndProve() throws {
        let contract = try deployed(Self.module(Self.storage, data: #"(data (i32.const 16) "key")"#))
        #expect(try call(contract, "put", Array("hello".utf8)).status == .success)
        #expect(try stored(contract, "key") == Array("hello".utf8))
        let result = query(contract, "get")
        #expect(result.error == nil && result.output == Array("hello".utf8))
        #expect(result.gasUsed > 0)

        let proof = try chain.state.tree.prove(ContractKeys.storage(contract, Array("key".utf8)), root: chain.root)
        #expect(proof.value == Array("hello".utf8))
        #expect(proof.verify(root: chain.root, using: chain.hasher))

        #expect(try call(contract, "delete").status == .success)
        #expect(try stored(contract, "key") == nil)
        #expect(query(contract, "get").error?.code == "contract.failed")
    }

    @Test func aQueryChangesNothing() throws {
        let contract = try deployed(Self.module(Self.storage, data: #"(data (i32.const 16) "key")"#))
        let root = chain.root
        let result = query(contract, "put", Array("x".utf8))
        #expect(result.error == nil)
        #expect(try stored(contract, "key") == nil && chain.root == root)
    }

    @Test func callerOriginSelfAndHeightAreWhatTheChainSays() throws {
        let body = """
            (if (i32.eq (local.get $first) (i32.const 99)) (then (call $caller (i32.const 256))))
            (if (i32.eq (local.get $first) (i32.const 111)) (then (call $origin (i32.const 256))))
            (if (i32.eq (local.get $first) (i32.const 115)) (then (call $self_address (i32.const 256))))
            (if (i32.eq (local.get $first) (i32.const 104))
              (then (i64.store (i32.const 256) (call $block_height)) (call $return_data (i32.const 256) (i32.const 8)) (return (i32.const 0))))
            (call $return_data (i32.const 256) (i32.const 32))
            """
        let contract = try deployed(Self.module(body))
        let me = chain.address(deployer).hash.bytes
        #expect(query(contract, "caller").output == me)
        #expect(query(contract, "origin").output == me)
        #expect(query(contract, "self").output == contract.hash.bytes)
        let height = query(contract, "height").output
        #expect(height == withUnsafeBytes(of: chain.height.littleEndian, Array.init))
    }

    @Test func eventsCarryTheContractAddressAndTheirAttributes() throws {
        // Attributes as the SDK encodes them: u32 count, then u32-length strings.
        let attributes: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 6] + Array("amount".utf8) + [0, 0, 0, 2] + Array("42".utf8)
        let data = #"(data (i32.const 16) "earned") (data (i32.const 32) ""# + attributes.map { String(format: "\\%02x", $0) }.joined() + "\")"
        let contract = try deployed(Self.module("(call $emit_event (i32.const 16) (i32.const 6) (i32.const 32) (i32.const \(attributes.count)))", data: data))
        let receipt = try call(contract, "go")
        #expect(receipt.status == .success)
        #expect(receipt.events.last == Event(module: "contract", name: "earned", attributes: [.init("contract", contract.description), .init("amount", "42")]))
    }

    @Test func aRevertFailsTheTransactionWithItsMessageAndUndoesItsWrites() throws {
        let body = """
            (call $storage_put (i32.const 16) (i32.const 3) (local.get $a) (local.get $al))
            (call $revert (i32.const 32) (i32.const 14))
            """
        let contract = try deployed(Self.module(body, data: #"(data (i32.const 16) "key") (data (i32.const 32) "not authorised")"#))
        let receipt = try call(contract, "put", [1, 2, 3])
        #expect(Self.failure(receipt)?.code == "contract.reverted")
        #expect(Self.failure(receipt)?.message == "not authorised")
        #expect(try stored(contract, "key") == nil)
        #expect(receipt.gasUsed > 0 && receipt.events.isEmpty)
    }

    @Test func aNonZeroStatusFailsTheCall() throws {
        let contract = try deployed(Self.module("(return (i32.const 7))"))
        #expect(Self.failure(try call(contract, "go"))?.code == "contract.failed")
    }

    @Test func hashesMatchTheHost() throws {
        let body = """
            (if (i32.eq (local.get $first) (i32.const 115))
              (then (call $hash_sha256 (local.get $a) (local.get $al) (i32.const 256))))
            (if (i32.eq (local.get $first) (i32.const 109))
              (then (call $hash_sm3 (local.get $a) (local.get $al) (i32.const 256))))
            (call $return_data (i32.const 256) (i32.const 32))
            """
        let contract = try deployed(Self.module(body))
        let input = Array("citizen points".utf8)
        #expect(query(contract, "sha256", input).output == SHA256Hasher().hash(input).bytes)
        #expect(query(contract, "m(sm3)", input).output == SM3Hasher().hash(input).bytes)
    }

    @Test func logLinesReachQueriesOnly() throws {
        let contract = try deployed(Self.module("(call $log (local.get $a) (local.get $al))"))
        #expect(query(contract, "log", Array("checking balance".utf8)).logs == ["checking balance"])
        #expect(try call(contract, "log", Array("x".utf8)).status == .success)
    }

    @Test func aContractCallsASystemModuleAsItself() throws {
        // kv.put(key "k", value "v"), arguments in the kv module's encoding.
        let kvArguments: [UInt8] = [0, 0, 0, 1, 107, 0, 0, 0, 1, 118]
        let data = #"(data (i32.const 16) "kv") (data (i32.const 32) "put") (data (i32.const 48) ""# + kvArguments.map { String(format: "\\%02x", $0) }.joined() + "\")"
        let body = "(drop (call $call_module (i32.const 16) (i32.const 2) (i32.const 32) (i32.const 3) (i32.const 48) (i32.const \(kvArguments.count)) (i32.const 256) (i32.const 0)))"
        let contract = try deployed(Self.module(body, data: data))
        #expect(try call(contract, "go").status == .success)
        #expect(try chain.state.value(for: StateKeys.kv(owner: contract, key: Array("k".utf8))) == Array("v".utf8))
        #expect(try chain.state.value(for: StateKeys.kv(owner: chain.address(deployer), key: Array("k".utf8))) == nil)
    }

    @Test func contractsCallContractsAndSeeTheCallerAsTheCallingContract() throws {
        let callee = try deployed(Self.module("(call $caller (i32.const 256)) (call $return_data (i32.const 256) (i32.const 32))"))
        // The caller forwards to `callee.who()` and returns what it got.
        let arguments = ContractModule.callArguments(contract: callee, method: "who", arguments: [])
        let data = #"(data (i32.const 16) "contract") (data (i32.const 32) "call") (data (i32.const 48) ""# + arguments.map { String(format: "\\%02x", $0) }.joined() + "\")"
        let body = """
            (local.set $n (call $call_module (i32.const 16) (i32.const 8) (i32.const 32) (i32.const 4) (i32.const 48) (i32.const \(arguments.count)) (i32.const 512) (i32.const 64)))
            (call $return_data (i32.const 512) (local.get $n))
            """
        let caller = try deployed(Self.module(body, data: data))
        #expect(query(caller, "go").output == caller.hash.bytes)
    }

    // MARK: Limits and hostile contracts

    @Test func anInfiniteLoopRunsOutOfGasAndUsesAllOfIt() throws {
        let contract = try deployed(Self.module("(call $storage_put (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 1)) (loop $forever (br $forever))"))
        let receipt = try call(contract, "spin", gasLimit: 2_000_000)
        #expect(Self.failure(receipt)?.code == "gas.out_of_gas")
        #expect(receipt.gasUsed == 2_000_000)
        #expect(try chain.state.value(for: ContractKeys.storage(contract, [0])) == nil)
        let nonce = try StateKeys.decodeU64(chain.state.value(for: StateKeys.nonce(chain.address(deployer))))
        #expect(nonce == 2, "the failed call still takes its nonce")
    }

    @Test func memoryCannotGrowPastTheLimit() throws {
        let grow = """
            (if (i32.lt_s (memory.grow (local.get $al)) (i32.const 0)) (then (call $revert (i32.const 16) (i32.const 6))))
            """
        let contract = try deployed(Self.module(grow, data: #"(data (i32.const 16) "no mem")"#))
        #expect(try call(contract, "grow", Array(repeating: 0, count: 63)).status == .success)
        let bomb = try call(contract, "grow", Array(repeating: 0, count: 64))
        #expect(Self.failure(bomb)?.message == "no mem")
        let (_, declared) = try deploy(Self.module("", memory: "65"))
        #expect(Self.failure(declared)?.code == "contract.limits")
    }

    @Test func growingMemoryCostsGas() throws {
        let contract = try deployed(Self.module("(drop (memory.grow (local.get $al)))"))
        let small = try call(contract, "grow", [0])
        let large = try call(contract, "grow", Array(repeating: 0, count: 32))
        #expect(large.gasUsed - small.gasUsed >= 31 * ContractGas.memoryPage)
    }

    @Test func deepRecursionTrapsCleanly() throws {
        let contract = try deployed(
            Self.module("(drop (call $down (i32.const 0)))", functions: "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))"))
        let receipt = try call(contract, "recurse", gasLimit: 100_000_000)
        #expect(Self.failure(receipt)?.code == "contract.trap")
        #expect(Self.failure(receipt)?.message.contains("stack") == true)
    }

    @Test func contractCallsNestAtMostEightDeep() throws {
        // Calls itself through the contract module until the host refuses.
        let body = """
            (call $self_address (i32.const 100))
            (i32.store8 (i32.const 96) (i32.const 0))
            (drop (call $call_module (i32.const 16) (i32.const 8) (i32.const 32) (i32.const 4) (i32.const 100) (i32.const 41) (i32.const 512) (i32.const 0)))
            """
        // Arguments of contract.call: address (written at 100), method "r" (u32 length at 132), no arguments.
        let data = #"(data (i32.const 16) "contract") (data (i32.const 32) "call") (data (i32.const 132) "\00\00\00\01r\00\00\00\00")"#
        let contract = try deployed(Self.module(body, data: data))
        let receipt = try call(contract, "r", gasLimit: 100_000_000)
        #expect(Self.failure(receipt)?.code == "contract.depth_exceeded")
    }

    @Test func aHugeEventIsRefused() throws {
        let contract = try deployed(Self.module("(call $emit_event (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 5000))", data: #"(data (i32.const 16) "huge")"#))
        #expect(Self.failure(try call(contract, "go"))?.code == "contract.event_too_large")
    }

    @Test func storageKeysAndValuesAreBounded() throws {
        let contract = try deployed(Self.module("(call $storage_put (i32.const 0) (local.get $al) (i32.const 0) (i32.const 1))"))
        #expect(try call(contract, "k", Array(repeating: 0, count: 256)).status == .success)
        #expect(Self.failure(try call(contract, "k", Array(repeating: 0, count: 257)))?.code == "contract.limit")
        let values = try deployed(Self.module("(call $storage_put (i32.const 0) (i32.const 1) (i32.const 0) (local.get $al))"))
        #expect(Self.failure(try call(values, "v", Array(repeating: 0, count: 16 * 1024 + 1)))?.code == "contract.limit")
    }

    @Test func pointersOutsideMemoryTrapInsteadOfCrashing() throws {
        let contract = try deployed(Self.module("(call $storage_put (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 1))"))
        let receipt = try call(contract, "oob")
        #expect(Self.failure(receipt)?.code == "contract.trap")
        let wild = try deployed(Self.module("(call $return_data (i32.const -1) (i32.const 16))"))
        #expect(Self.failure(try call(wild, "oob"))?.code == "contract.trap")
    }

    @Test func aTrapInsideTheContractBecomesAFailedReceipt() throws {
        let contract = try deployed(Self.module("(drop (i32.div_u (i32.const 1) (i32.const 0)))"))
        let receipt = try call(contract, "divide")
        #expect(Self.failure(receipt)?.code == "contract.trap")
        #expect(Self.failure(receipt)?.message.contains("divide") == true || Self.failure(receipt)?.message.contains("zero") == true)
    }

    @Test(arguments: [
        ("malformed", [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0xff] as [UInt8], "contract.malformed"),
        ("not wasm", Array("hello".utf8), "contract.malformed"),
    ])
    func malformedModulesAreRefused(_ name: String, _ code: [UInt8], _ expected: String) throws {
        let (address, receipt) = try deploy(code)
        #expect(Self.failure(receipt)?.code == expected, "\(name)")
        #expect(try chain.state.value(for: ContractKeys.meta(address)) == nil)
    }

    @Test func modulesThatCouldMakeNodesDisagreeOrEscapeAreRefused() throws {
        let refusals: [(String, [UInt8], String)] = [
            ("float arithmetic", try Self.module("(drop (f64.add (f64.const 1) (f64.const 2)))"), "contract.float"),
            ("float conversion", try Self.module("(drop (i32.trunc_f32_s (f32.const 1)))"), "contract.float"),
            ("float local", try Self.module("", functions: "(func $f (local f64))"), "contract.float"),
            ("float global", try Self.module("", functions: "(global $g f32 (f32.const 0))"), "contract.float"),
            ("float parameter", try Self.module("", functions: "(func $f (param f32))"), "contract.float"),
            (
                "unknown import",
                try wat2wasm(#"(module (import "env" "random" (func (result i32))) (memory (export "memory") 1))"#),
                "contract.forbidden_import"
            ),
            (
                "wrong signature",
                try wat2wasm(#"(module (import "env" "log" (func (param i64))) (memory (export "memory") 1))"#),
                "contract.forbidden_import"
            ),
            (
                "imported memory",
                try wat2wasm(#"(module (import "env" "memory" (memory 1)))"#),
                "contract.forbidden_import"
            ),
            ("start function", try Self.module("", functions: "(func $boot) (start $boot)"), "contract.start_function"),
            ("no ABI", try wat2wasm(#"(module (memory (export "memory") 1))"#), "contract.missing_export"),
            ("no memory", try wat2wasm(#"(module (func (export "civitas_alloc") (param i32) (result i32) (i32.const 0)))"#), "contract.missing_export"),
            ("big table", try Self.module("", functions: "(table 5000 funcref)"), "contract.limits"),
            ("table growth", try Self.module("(drop (table.grow (ref.null func) (i32.const 1)))", functions: "(table 1 funcref)"), "contract.forbidden"),
            ("segment drop", try Self.module("(data.drop 0)", data: #"(data "passive")"#), "contract.forbidden"),
            ("reserved export", try Self.module("", functions: #"(func (export "civitas:x"))"#), "contract.forbidden"),
        ]
        for (name, code, expected) in refusals {
            let (address, receipt) = try deploy(code, gasLimit: 90_000_000)
            #expect(Self.failure(receipt)?.code == expected, "\(name): \(receipt.status)")
            #expect(try chain.state.value(for: ContractKeys.meta(address)) == nil, "\(name)")
        }
    }

    @Test func codeOverTheSizeLimitIsRefused() throws {
        #expect(throws: ExecutionError.self) { try ContractValidator.validate([UInt8](repeating: 0, count: ContractLimits.codeBytesMax + 1)) }
        var writer = CanonicalWriter()
        writer.byteString([UInt8](repeating: 0, count: ContractLimits.codeBytesMax + 1), max: .max)
        writer.u8(0)
        writer.bool(false)
        let receipt = try chain.call(deployer, Call(module: "contract", method: "deploy", arguments: writer.bytes), gasLimit: 90_000_000)
        #expect(Self.failure(receipt)?.code == "call.invalid_arguments")
    }

    @Test func badArgumentsToTheModuleAreTypedErrors() throws {
        let receipt = try chain.call(deployer, Call(module: "contract", method: "call", arguments: [1, 2, 3]))
        #expect(Self.failure(receipt)?.code == "call.invalid_arguments")
        let missing = try call(Address(Hash(bytes: [UInt8](repeating: 7, count: 32))), "go")
        #expect(Self.failure(missing)?.code == "contract.not_found")
        let unknown = try chain.call(deployer, Call(module: "contract", method: "explode", arguments: []))
        #expect(Self.failure(unknown)?.code == "call.unknown_method")
    }

    // MARK: Versions and upgrades

    @Test func theOwnerUpgradesAndEveryVersionStaysOnTheLedger() throws {
        let first = try Self.module("(call $return_data (i32.const 16) (i32.const 2))", data: #"(data (i32.const 16) "v1")"#)
        let second = try Self.module("(call $return_data (i32.const 16) (i32.const 2))", data: #"(data (i32.const 16) "v2")"#)
        let contract = try deployed(first)
        #expect(query(contract, "version").output == Array("v1".utf8))

        let stranger = chain.admins[1]
        let refused = try chain.call(
            stranger, Call(module: "contract", method: "upgrade", arguments: ContractModule.upgradeArguments(contract: contract, code: second)),
            gasLimit: 50_000_000)
        #expect(Self.failure(refused)?.code == "contract.not_owner")

        let upgraded = try chain.call(
            deployer, Call(module: "contract", method: "upgrade", arguments: ContractModule.upgradeArguments(contract: contract, code: second)),
            gasLimit: 50_000_000)
        #expect(upgraded.status == .success)
        #expect(query(contract, "version").output == Array("v2".utf8))
        let recordBytes = try chain.state.value(for: ContractKeys.meta(contract))
        let record = try ContractRecord(canonicalBytes: try #require(recordBytes))
        #expect(record.version == 2 && record.codeHash == ContractModule.codeHash(second, hasher: chain.hasher))
        for (number, code) in [(UInt64(1), first), (2, second)] {
            let versionBytes = try chain.state.value(for: ContractKeys.version(contract, number))
            let version = try ContractVersion(canonicalBytes: try #require(versionBytes))
            #expect(version.codeHash == ContractModule.codeHash(code, hasher: chain.hasher))
            let loaded = try ContractModule.loadCode(version.codeHash, size: code.count) { (key: [UInt8]) throws(ExecutionError) in
                try chain.state.value(for: key)
            }
            #expect(loaded == code)
        }
    }

    @Test func aGovernanceContractUpgradesOnlyWithAQuorumOfOrganisations() throws {
        let first = try Self.module("(call $return_data (i32.const 16) (i32.const 2))", data: #"(data (i32.const 16) "v1")"#)
        let second = try Self.module("(call $return_data (i32.const 16) (i32.const 2))", data: #"(data (i32.const 16) "v2")"#)
        let (contract, deployedReceipt) = try deploy(first, policy: .governance)
        #expect(deployedReceipt.status == .success)
        let upgrade = Call(module: "contract", method: "upgrade", arguments: ContractModule.upgradeArguments(contract: contract, code: second))
        #expect(Self.failure(try chain.call(chain.outsider, upgrade, gasLimit: 50_000_000))?.code == "governance.not_admin")
        #expect(try chain.call(chain.admins[0], upgrade, gasLimit: 50_000_000).status == .success)
        let approve = Call(
            module: "contract", method: "approve_upgrade",
            arguments: ContractModule.approveUpgradeArguments(contract: contract, codeHash: ContractModule.codeHash(second, hasher: chain.hasher)))
        #expect(try chain.call(chain.admins[1], approve).status == .success)
        #expect(query(contract, "v").output == Array("v1".utf8), "two of four organisations are not enough")
        #expect(Self.failure(try chain.call(chain.admins[1], approve))?.code == "contract.already_approved")
        #expect(try chain.call(chain.admins[2], approve).status == .success)
        #expect(query(contract, "v").output == Array("v2".utf8))
    }

    @Test func aFrozenContractCannotBeUpgraded() throws {
        let code = try Self.module("")
        let (contract, _) = try deploy(code, policy: .frozen)
        let receipt = try chain.call(
            deployer, Call(module: "contract", method: "upgrade", arguments: ContractModule.upgradeArguments(contract: contract, code: code)),
            gasLimit: 50_000_000)
        #expect(Self.failure(receipt)?.code == "contract.frozen")
    }

    @Test func deployRunsInitAndAFailingInitDeploysNothing() throws {
        let code = try Self.module(Self.storage, data: #"(data (i32.const 16) "key")"#)
        let (contract, receipt) = try deploy(code, initArguments: Array("first".utf8))
        #expect(receipt.status == .success)
        // "init" starts with 'i', which the storage body ignores: nothing stored, but it ran.
        #expect(try stored(contract, "key") == nil)
        let failing = try Self.module("(return (i32.const 3))")
        let (address, failed) = try deploy(failing, initArguments: [])
        #expect(Self.failure(failed)?.code == "contract.failed")
        #expect(try chain.state.value(for: ContractKeys.meta(address)) == nil)
    }

    // MARK: Instance reuse

    @Test func aReusedInstanceStartsEachCallAsAFreshOneWould() throws {
        // Counts calls in a mutable global it does not export and in memory; both must
        // read 1 on every call, and every call must cost the same gas, whether the call
        // got a new instance or a reused one.
        let body = """
            (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
            (i32.store (i32.const 512) (i32.add (i32.load (i32.const 512)) (i32.const 1)))
            (i32.store (i32.const 256) (global.get $calls))
            (i32.store (i32.const 260) (i32.load (i32.const 512)))
            (call $return_data (i32.const 256) (i32.const 8))
            """
        let contract = try deployed(Self.module(body, functions: "(global $calls (mut i32) (i32.const 0))"))
        var gas: Set<UInt64> = []
        for _ in 0..<4 {
            let result = query(contract, "count")
            #expect(result.output == [1, 0, 0, 0, 1, 0, 0, 0])
            gas.insert(result.gasUsed)
        }
        for _ in 0..<3 { gas.insert(try call(contract, "count").gasUsed) }
        #expect(gas.count == 2, "one figure for queries, one for transactions (intrinsic gas): \(gas)")
    }

    @Test func anInstanceWhoseMemoryGrewOrWhoseCallFailedIsNotReused() throws {
        let body = """
            (if (i32.eq (local.get $first) (i32.const 103)) (then (drop (memory.grow (i32.const 1)))))
            (if (i32.eq (local.get $first) (i32.const 116)) (then (unreachable)))
            (i32.store (i32.const 256) (memory.size))
            (call $return_data (i32.const 256) (i32.const 4))
            """
        let contract = try deployed(Self.module(body))
        #expect(query(contract, "grow").output == [2, 0, 0, 0])
        #expect(query(contract, "size").output == [1, 0, 0, 0])
        #expect(query(contract, "trap").error?.code == "contract.trap")
        #expect(query(contract, "size").output == [1, 0, 0, 0])
    }

    // MARK: Determinism

    @Test func twoChainsRunningTheSameCallsAgreeOnRootsAndGas() throws {
        func run() throws -> (roots: [Hash], gas: [UInt64]) {
            let test = try ContractHostTests()
            let contract = try test.deployed(Self.module(Self.storage, data: #"(data (i32.const 16) "key")"#))
            let looping = try test.deployed(Self.module("(loop $l (br $l))"))
            var roots: [Hash] = [test.chain.root]
            var gas: [UInt64] = []
            for round in 0..<5 {
                let receipts = try test.chain.block([
                    (test.deployer, Call(module: "contract", method: "call", arguments: ContractModule.callArguments(contract: contract, method: "put", arguments: [UInt8(round)]))),
                    (test.chain.admins[1], Call(module: "contract", method: "call", arguments: ContractModule.callArguments(contract: looping, method: "spin", arguments: []))),
                ], gasLimit: 1_000_000 + UInt64(round) * 7_919)
                gas += receipts.map(\.gasUsed)
                roots.append(test.chain.root)
            }
            return (roots, gas)
        }
        let first = try run()
        let second = try run()
        #expect(first.roots == second.roots)
        #expect(first.gas == second.gas)
    }
}
