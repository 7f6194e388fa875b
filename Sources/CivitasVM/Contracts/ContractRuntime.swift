import CivitasCore
import CivitasCrypto
import Synchronization
// `Store.resourceLimiter` is SPI in WasmKit 0.4; it is how memory growth is capped
// and charged while the contract runs.
@_spi(Fuzzing) import WasmKit

/// The host functions a contract may import (module `env`) and the functions it must
/// export. Every pointer and length is an i32 into the contract's own memory.
public enum HostFunction {
    public static let moduleName = "env"

    struct NotCallable: Error {}

    private static func type(_ parameters: Int, _ result: ValueType? = nil) -> FunctionType {
        FunctionType(parameters: Array(repeating: .i32, count: parameters), results: result.map { [$0] } ?? [])
    }

    public static let signatures: [String: FunctionType] = [
        "storage_get": type(4, .i32),
        "storage_put": type(4),
        "storage_delete": type(2),
        "caller": type(1),
        "self_address": type(1),
        "origin": type(1),
        "block_height": FunctionType(parameters: [], results: [.i64]),
        "emit_event": type(4),
        "return_data": type(2),
        "revert": type(2),
        "hash_sha256": type(3),
        "hash_sm3": type(3),
        "log": type(2),
        "call_module": type(8, .i32),
    ]

    public static let exports: [String: FunctionType] = [
        "civitas_call": type(4, .i32),
        "civitas_alloc": type(1, .i32),
    ]
}

/// One call of a contract method.
public struct ContractInvocation: Sendable {
    public var contract: Address
    public var codeHash: Hash
    public var codeSize: Int
    public var method: String
    public var arguments: [UInt8]

    public init(contract: Address, codeHash: Hash, codeSize: Int, method: String, arguments: [UInt8]) {
        self.contract = contract
        self.codeHash = codeHash
        self.codeSize = codeSize
        self.method = method
        self.arguments = arguments
    }
}

/// What the host needs from the modules layer: the code of a version, and calls into
/// system modules (including `contract` itself, for contract-to-contract calls).
public struct ContractServices {
    public var loadCode: (Hash) throws(ExecutionError) -> [UInt8]
    public var callModule: (_ module: String, _ method: String, _ arguments: [UInt8]) throws(ExecutionError) -> [UInt8]
    /// Receives the contract's `log` lines; nil discards them (transactions do).
    public var log: ((Address, String) -> Void)?

    public init(
        loadCode: @escaping (Hash) throws(ExecutionError) -> [UInt8],
        callModule: @escaping (String, String, [UInt8]) throws(ExecutionError) -> [UInt8],
        log: ((Address, String) -> Void)? = nil
    ) {
        self.loadCode = loadCode
        self.callModule = callModule
        self.log = log
    }
}

/// Runs contract methods on WasmKit with fuel metering as gas. Parsed modules are
/// cached by code hash, and so are instances: WasmKit translates a function the first
/// time an instance calls it, which costs far more than the call, so an instance is
/// reused after it is reset to exactly its state after instantiation (memory image and
/// every global restored; the validator refuses the instructions that could change
/// anything else). An instance whose call failed, or whose memory grew, is dropped.
public final class ContractRuntime: @unchecked Sendable {
    // Unchecked: the engine is immutable after creation and WasmKit shares one engine
    // between stores on many threads; the cache and the pools are behind the mutex.
    private let engine: Engine
    private let cache: Mutex<ModuleCache>
    static let idleInstancesMax = 4
    /// Exports the host adds to reach a module's globals; contracts may not use the prefix.
    public static let reservedExportPrefix = "civitas:"

    public init(cacheCapacity: Int = 128) {
        engine = Engine(configuration: EngineConfiguration(fuelMetering: true))
        cache = Mutex(ModuleCache(capacity: cacheCapacity))
    }

    public func invoke(
        _ invocation: ContractInvocation, context: TransactionContext, services: ContractServices
    ) throws(ExecutionError) -> [UInt8] {
        guard invocation.method.utf8.count <= ContractLimits.methodBytesMax else {
            throw ExecutionError("call.invalid_arguments", "method name exceeds \(ContractLimits.methodBytesMax) bytes")
        }
        let invoker = context.caller
        return try context.enterContract(invocation.contract, maxDepth: ContractLimits.callDepthMax) { () throws(ExecutionError) in
            try context.charge(
                ContractGas.callBase + ContractGas.callPerCodeKiB * UInt64((invocation.codeSize + 1023) / 1024))
            let module = try module(invocation.codeHash, services: services)
            let instance = try checkOut(module)
            let frame = ContractFrame(
                context: context, contract: invocation.contract, invoker: invoker, services: services, instance: instance)
            let output = try frame.run(method: invocation.method, arguments: invocation.arguments)
            if instance.reset() { checkIn(instance, to: module) }
            return output
        }
    }

    private func module(_ codeHash: Hash, services: ContractServices) throws(ExecutionError) -> CachedModule {
        if let cached = cache.withLock({ $0.get(codeHash) }) { return cached }
        let module = try CachedModule(code: try services.loadCode(codeHash))
        cache.withLock { $0.put(codeHash, module) }
        return module
    }

    private func checkOut(_ module: CachedModule) throws(ExecutionError) -> ContractInstance {
        if let idle = cache.withLock({ _ in module.idle.popLast() }) { return idle }
        return try ContractInstance(module, engine: engine)
    }

    private func checkIn(_ instance: ContractInstance, to module: CachedModule) {
        cache.withLock { _ in
            if module.idle.count < Self.idleInstancesMax { module.idle.append(instance) }
        }
    }
}

/// A parsed module, ready to instantiate, with its idle instances.
final class CachedModule: @unchecked Sendable {
    // Unchecked: `idle` is only touched under the runtime's mutex.
    let module: Module
    /// Export names of the module's mutable globals, which a reset restores.
    let globals: [String]
    var idle: [ContractInstance] = []

    init(code: [UInt8]) throws(ExecutionError) {
        let prepared = try ModulePreparation.exportingGlobals(code)
        do { module = try parseWasm(bytes: prepared.code, features: ContractValidator.features) } catch {
            throw ExecutionError("contract.malformed", "stored code does not parse: \(ContractValidator.firstLine(of: error))")
        }
        globals = prepared.mutableGlobals
    }
}

/// Least-recently-used modules by code hash.
struct ModuleCache {
    let capacity: Int
    private var modules: [Hash: (module: CachedModule, used: UInt64)] = [:]
    private var clock: UInt64 = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    mutating func get(_ hash: Hash) -> CachedModule? {
        guard let entry = modules[hash] else { return nil }
        clock += 1
        modules[hash] = (entry.module, clock)
        return entry.module
    }

    mutating func put(_ hash: Hash, _ module: CachedModule) {
        if modules.count >= capacity, modules[hash] == nil,
            let oldest = modules.min(by: { $0.value.used < $1.value.used })?.key
        {
            modules[oldest] = nil
        }
        clock += 1
        modules[hash] = (module, clock)
    }
}

/// One instance of a contract module with its store and host functions, and the image
/// of its memory and globals right after instantiation.
final class ContractInstance: ResourceLimiter, @unchecked Sendable {
    // Unchecked: an instance is used by one call at a time, checked out of its pool.
    let store: Store
    private(set) var memory: Memory
    private(set) var alloc: Function
    private(set) var entry: Function
    private var memoryImage: [UInt8] = []
    private var globalImage: [(Global, Value)] = []
    /// The call running in this instance; host functions act on it.
    var frame: ContractFrame?

    init(_ module: CachedModule, engine: Engine) throws(ExecutionError) {
        store = Store(engine: engine)
        do {
            // Placeholders until instantiation gives the real exports.
            var imports = Imports()
            let instanceReference = Unowned()
            for (name, type) in HostFunction.signatures {
                imports.define(
                    module: HostFunction.moduleName, name: name,
                    Function(store: store, type: type) { _, arguments in
                        guard let frame = instanceReference.instance?.frame else { throw HostFunction.NotCallable() }
                        return try frame.callHost(name, arguments)
                    })
            }
            let instance = try module.module.instantiate(store: store, imports: imports)
            guard let memory = instance.exports[memory: "memory"], let alloc = instance.exports[function: "civitas_alloc"],
                let entry = instance.exports[function: "civitas_call"]
            else { throw ExecutionError("contract.missing_export", "the contract lacks its memory or ABI exports") }
            self.memory = memory
            self.alloc = alloc
            self.entry = entry
            instanceReference.instance = self
            store.resourceLimiter = self
            memoryImage = memory.withUnsafeBufferPointer(offset: 0, count: memory.byteCount) { Array($0) }
            globalImage = module.globals.compactMap { name in instance.exports[global: name].map { ($0, $0.value) } }
        } catch let error as ExecutionError {
            throw error
        } catch {
            throw ExecutionError("contract.trap", "instantiation failed: \(ContractValidator.firstLine(of: error))")
        }
    }

    final class Unowned {
        weak var instance: ContractInstance?
    }

    var initialPages: UInt64 { UInt64(memoryImage.count / 65_536) }

    /// Back to the state right after instantiation; false when that is impossible (the
    /// memory grew), and the instance must be dropped.
    func reset() -> Bool {
        guard memory.byteCount == memoryImage.count else { return false }
        memory.withUnsafeMutableBufferPointer(offset: 0, count: memoryImage.count) { $0.copyBytes(from: memoryImage) }
        for (global, value) in globalImage {
            do { try global.assign(value) } catch { return false }
        }
        return true
    }

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        guard desired <= Int(ContractLimits.memoryPagesMax) * 65_536 else { return false }
        // Instantiation allocates the initial memory before any call: each call pays for it.
        guard let frame else { return true }
        return try frame.grow(to: desired)
    }

    func limitTableGrowth(to desired: Int) throws -> Bool {
        desired <= Int(ContractLimits.tableElementsMax)
    }
}

/// One call running in an instance: the gas bridge between the store's fuel and the
/// transaction's meter, and what the call produced.
final class ContractFrame {
    let context: TransactionContext
    let contract: Address
    let invoker: Address
    let services: ContractServices
    let instance: ContractInstance
    var returnData: [UInt8] = []
    /// The first error a host function raised; it, not WasmKit's wrapping, is the
    /// call's failure reason.
    var hostError: ExecutionError?
    /// Fuel the store held when the meter was last brought level with it.
    var fuelMark: UInt64 = 0
    var memoryBytes: Int

    var store: Store { instance.store }
    var memory: Memory? { instance.memory }

    init(context: TransactionContext, contract: Address, invoker: Address, services: ContractServices, instance: ContractInstance) {
        self.context = context
        self.contract = contract
        self.invoker = invoker
        self.services = services
        self.instance = instance
        self.memoryBytes = instance.memory.byteCount
    }

    func run(method: String, arguments: [UInt8]) throws(ExecutionError) -> [UInt8] {
        try context.charge(ContractGas.memoryPage * instance.initialPages)
        instance.frame = self
        defer { instance.frame = nil }
        refuel()
        do {
            let methodBytes = Array(method.utf8)
            let methodPointer = try place(methodBytes)
            let argumentsPointer = try place(arguments)
            let results = try instance.entry.invoke([
                .i32(methodPointer), .i32(UInt32(methodBytes.count)), .i32(argumentsPointer), .i32(UInt32(arguments.count)),
            ])
            try settle()
            guard case .i32(let status) = results.first else {
                throw ExecutionError("contract.trap", "civitas_call returned no status")
            }
            guard status == 0 else {
                throw ExecutionError("contract.failed", "method \(method) failed with status \(Int32(bitPattern: status))")
            }
            return returnData
        } catch {
            throw failure(error)
        }
    }

    /// Copies call inputs into memory the contract allocated for them.
    private func place(_ bytes: [UInt8]) throws -> UInt32 {
        let results = try instance.alloc.invoke([.i32(UInt32(bytes.count))])
        guard case .i32(let pointer) = results.first, pointer != 0 || bytes.isEmpty else {
            throw ExecutionError("contract.trap", "civitas_alloc could not allocate \(bytes.count) bytes")
        }
        try settle()
        try write(bytes, at: pointer)
        return pointer
    }

    private func failure(_ error: any Error) -> ExecutionError {
        if let hostError { return hostError }
        if let error = error as? ExecutionError { return error }
        let text = ContractValidator.firstLine(of: error)
        if text.contains("out of fuel") {
            context.exhaustGas()
            return .outOfGas(context.gas.limit)
        }
        // The instructions run until the trap are paid for.
        if (try? settle()) == nil { return .outOfGas(context.gas.limit) }
        let reason = text.hasPrefix("Trap: ") ? String(text.dropFirst(6)) : text
        return ExecutionError("contract.trap", "contract trapped: \(reason)")
    }

    // MARK: Gas

    /// Charges the meter for the instructions run since the last mark.
    func settle() throws(ExecutionError) {
        let remaining = store.fuel?.remaining ?? 0
        let used = fuelMark >= remaining ? fuelMark - remaining : 0
        fuelMark = remaining
        try context.charge(used)
    }

    /// Gives the store what the meter has left (after host charges).
    func refuel() {
        fuelMark = context.gas.remaining
        store.fuel = Fuel(remaining: fuelMark)
    }

    /// Runs a host function's body with the meter level on entry and the store's fuel
    /// level on exit; an error is kept as the call's failure reason.
    func host<T>(_ cost: UInt64, _ body: () throws(ExecutionError) -> T) throws -> T {
        do {
            try settle()
            try context.charge(ContractGas.hostCallBase + cost)
            let value = try body()
            refuel()
            return value
        } catch {
            if hostError == nil { hostError = error }
            throw error
        }
    }

    /// Memory growth during the call: charged per page.
    func grow(to desired: Int) throws -> Bool {
        let pages = UInt64(max(0, desired - memoryBytes) + 65_535) / 65_536
        try host(ContractGas.memoryPage * pages) { () throws(ExecutionError) in memoryBytes = desired }
        return true
    }

    // MARK: Memory

    func read(_ pointer: UInt32, _ length: UInt32, max: Int, _ what: String) throws(ExecutionError) -> [UInt8] {
        guard Int(length) <= max else {
            throw ExecutionError("contract.limit", "\(what) of \(length) bytes exceeds \(max)")
        }
        try context.charge(ContractGas.copyPerByte * UInt64(length))
        let memory = try checked(pointer, length)
        return memory.withUnsafeBufferPointer(offset: UInt(pointer), count: Int(length)) { Array($0) }
    }

    func write(_ bytes: [UInt8], at pointer: UInt32) throws(ExecutionError) {
        try context.charge(ContractGas.copyPerByte * UInt64(bytes.count))
        let memory = try checked(pointer, UInt32(bytes.count))
        memory.withUnsafeMutableBufferPointer(offset: UInt(pointer), count: bytes.count) { buffer in
            buffer.copyBytes(from: bytes)
        }
    }

    private func checked(_ pointer: UInt32, _ length: UInt32) throws(ExecutionError) -> Memory {
        guard let memory else { throw ExecutionError("contract.trap", "memory accessed before instantiation") }
        guard UInt64(pointer) + UInt64(length) <= UInt64(memory.byteCount) else {
            throw ExecutionError("contract.trap", "host access out of bounds: \(length) bytes at \(pointer)")
        }
        return memory
    }

    func text(_ pointer: UInt32, _ length: UInt32, max: Int, _ what: String) throws(ExecutionError) -> String {
        let bytes = try read(pointer, length, max: max, what)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ExecutionError("contract.invalid_utf8", "\(what) is not UTF-8")
        }
        return text
    }

    // MARK: Host functions

    /// Runs the host function `name` for the contract.
    func callHost(_ name: String, _ values: [Value]) throws -> [Value] {
        let a: [UInt32] = values.map { value -> UInt32 in
            if case .i32(let raw) = value { return raw }
            return 0
        }
        switch name {
        case "storage_get":
            return try host(ContractGas.hostCallBase) { () throws(ExecutionError) in
                let key = try read(a[0], a[1], max: ContractLimits.storageKeyBytesMax, "storage key")
                guard let value = try context.get(ContractKeys.storage(contract, key)) else { return [.i32(UInt32(bitPattern: -1))] }
                if value.count <= Int(a[3]) { try write(value, at: a[2]) }
                return [.i32(UInt32(value.count))]
            }
        case "storage_put":
            return try host(0) { () throws(ExecutionError) in
                let key = try read(a[0], a[1], max: ContractLimits.storageKeyBytesMax, "storage key")
                let value = try read(a[2], a[3], max: ContractLimits.storageValueBytesMax, "storage value")
                try context.set(ContractKeys.storage(contract, key), value)
                return []
            }
        case "storage_delete":
            return try host(0) { () throws(ExecutionError) in
                let key = try read(a[0], a[1], max: ContractLimits.storageKeyBytesMax, "storage key")
                try context.set(ContractKeys.storage(contract, key), nil)
                return []
            }
        case "caller":
            return try host(0) { () throws(ExecutionError) in
                try write(invoker.hash.bytes, at: a[0])
                return []
            }
        case "origin":
            return try host(0) { () throws(ExecutionError) in
                try write(context.senderAddress.hash.bytes, at: a[0])
                return []
            }
        case "self_address":
            return try host(0) { () throws(ExecutionError) in
                try write(contract.hash.bytes, at: a[0])
                return []
            }
        case "block_height":
            return try host(0) { () throws(ExecutionError) in [.i64(context.height)] }
        case "emit_event":
            return try host(GasSchedule.eventBase) { () throws(ExecutionError) in
                guard Int(a[1]) + Int(a[3]) <= ContractLimits.eventBytesMax else {
                    throw ExecutionError("contract.event_too_large", "an event may carry at most \(ContractLimits.eventBytesMax) bytes")
                }
                let name = try text(a[0], a[1], max: ProtocolLimits.eventNameBytesMax, "event name")
                let encoded = try read(a[2], a[3], max: ContractLimits.eventBytesMax, "event attributes")
                let attributes = try Self.decodeAttributes(encoded)
                try context.emit(
                    Event(module: "contract", name: name, attributes: [.init("contract", contract.description)] + attributes))
                return []
            }
        case "return_data":
            return try host(0) { () throws(ExecutionError) in
                returnData = try read(a[0], a[1], max: ContractLimits.returnBytesMax, "return data")
                return []
            }
        case "revert":
            return try host(0) { () throws(ExecutionError) in
                let bytes = try read(a[0], a[1], max: ProtocolLimits.errorMessageBytesMax / 2, "revert message")
                throw ExecutionError("contract.reverted", String(decoding: bytes, as: UTF8.self))
            }
        case "hash_sha256": return try hash(a, SHA256Hasher())
        case "hash_sm3": return try hash(a, SM3Hasher())
        case "log":
            return try host(ContractGas.log) { () throws(ExecutionError) in
                let bytes = try read(a[0], a[1], max: ContractLimits.logBytesMax, "log line")
                services.log?(contract, String(decoding: bytes, as: UTF8.self))
                return []
            }
        case "call_module":
            return try host(0) { () throws(ExecutionError) in
                let module = try text(a[0], a[1], max: ProtocolLimits.moduleNameBytesMax, "module name")
                let method = try text(a[2], a[3], max: ProtocolLimits.methodNameBytesMax, "method name")
                let arguments = try read(a[4], a[5], max: ProtocolLimits.callArgumentsBytesMax, "call arguments")
                // A contract callee runs on the same meter; `host` refuels from it after.
                let result = try services.callModule(module, method, arguments)
                if result.count <= Int(a[7]) { try write(result, at: a[6]) }
                return [.i32(UInt32(result.count))]
            }
        default:
            throw HostFunction.NotCallable()
        }
    }

    private func hash(_ a: [UInt32], _ hasher: some HashFunction) throws -> [Value] {
        try host(GasSchedule.hashBase + GasSchedule.hashPerWord * UInt64((a[1] + 31) / 32)) { () throws(ExecutionError) in
            let input = try read(a[0], a[1], max: ProtocolLimits.callArgumentsBytesMax, "hash input")
            try write(hasher.hash(input).bytes, at: a[2])
            return []
        }
    }

    /// Event attributes as the SDK writes them: u32 count, then key and value strings.
    static func decodeAttributes(_ bytes: [UInt8]) throws(ExecutionError) -> [Event.Attribute] {
        var reader = CanonicalReader(bytes)
        do {
            let attributes = try reader.list("event attributes", max: ProtocolLimits.eventAttributesMax - 1) {
                (reader: inout CanonicalReader) throws(CodecError) in
                Event.Attribute(
                    try reader.string("attribute key", max: ProtocolLimits.eventAttributeKeyBytesMax),
                    try reader.string("attribute value", max: ProtocolLimits.eventAttributeValueBytesMax))
            }
            try reader.finish()
            return attributes
        } catch {
            throw ExecutionError("contract.bad_event", "event attributes: \(error.description)")
        }
    }
}
