// The Civitas contract SDK for Embedded Swift. It is compiled together with a
// contract's own sources (one module, whole-module optimisation) by
// `civitas contract build`; the contract defines `func handle(_ call: inout Call)`.
//
// Text that varies at run time is `[UInt8]` (UTF-8): Swift's `String` pulls tens of
// kilobytes of Unicode support into a contract. Literals are `StaticString`, which costs
// nothing. Avoid `Dictionary` and `Set`: their hashing is seeded and their growth uses
// floating point, which the chain refuses at deploy.

// The host's imports are declared in civitas.h (the C ABI, shared with C contracts),
// which the build passes as the bridging header.

// MARK: ABI exports

@_expose(wasm, "civitas_alloc") @_cdecl("civitas_alloc")
public func civitasAlloc(_ size: Int32) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer.allocate(byteCount: Int(size), alignment: 8)
}

@_expose(wasm, "civitas_call") @_cdecl("civitas_call")
public func civitasCall(
    _ method: UnsafePointer<UInt8>, _ methodLength: Int32, _ arguments: UnsafePointer<UInt8>, _ argumentsLength: Int32
) -> Int32 {
    var call = Call(
        method: Array(UnsafeBufferPointer(start: method, count: Int(methodLength))),
        arguments: Arguments(Array(UnsafeBufferPointer(start: arguments, count: Int(argumentsLength)))))
    handle(&call)
    return 0
}

// MARK: Text

/// The UTF-8 bytes of a literal.
public func literal(_ text: StaticString) -> [UInt8] {
    Array(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
}

/// Decimal digits of a number, as UTF-8.
public func decimal(_ value: UInt64) -> [UInt8] {
    if value == 0 { return [48] }
    var digits: [UInt8] = []
    var rest = value
    while rest > 0 {
        digits.append(48 + UInt8(rest % 10))
        rest /= 10
    }
    return digits.reversed()
}

/// Lower-case hexadecimal of bytes, as UTF-8.
public func hexDigits(_ data: [UInt8]) -> [UInt8] {
    let digits = literal("0123456789abcdef")
    var out: [UInt8] = []
    out.reserveCapacity(data.count * 2)
    for byte in data {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return out
}

func withBytes<R>(_ text: StaticString, _ body: (UnsafePointer<UInt8>, Int32) -> R) -> R {
    body(text.utf8Start, Int32(text.utf8CodeUnitCount))
}

func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>?, Int32) -> R) -> R {
    bytes.withUnsafeBufferPointer { body($0.baseAddress, Int32($0.count)) }
}

// MARK: Addresses

/// An account or contract: 32 bytes.
public struct Address: Equatable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        if bytes.count != 32 { Chain.revert("an address is 32 bytes") }
        self.bytes = bytes
    }

    static func read(_ body: (UnsafeMutablePointer<UInt8>?) -> Void) -> Address {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeMutableBufferPointer { body($0.baseAddress) }
        return Address(bytes: bytes)
    }

    public var hex: [UInt8] { hexDigits(bytes) }
}

// MARK: The call

/// The method being called and its arguments.
public struct Call {
    public let method: [UInt8]
    public var arguments: Arguments

    /// Whether the method is `name`.
    public func `is`(_ name: StaticString) -> Bool { method == literal(name) }
}

/// The values a call carries, read in order. Each reader reverts the call when the next
/// value has another type, so a contract never runs on arguments it did not expect.
public struct Arguments {
    let data: [UInt8]
    var offset = 0

    public init(_ data: [UInt8]) { self.data = data }

    public var isEmpty: Bool { offset >= data.count }

    mutating func take(_ count: Int) -> [UInt8] {
        if count < 0 || offset + count > data.count { Chain.revert("arguments end too early") }
        let slice = Array(data[offset..<(offset + count)])
        offset += count
        return slice
    }

    mutating func tag(_ expected: UInt8) {
        if take(1)[0] != expected { Chain.revert("an argument has the wrong type") }
    }

    mutating func word() -> UInt64 {
        take(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    public mutating func u64() -> UInt64 {
        tag(1)
        return word()
    }

    public mutating func i64() -> Int64 {
        tag(2)
        return Int64(bitPattern: word())
    }

    public mutating func bool() -> Bool {
        tag(3)
        let value = take(1)[0]
        if value > 1 { Chain.revert("a boolean is 0 or 1") }
        return value == 1
    }

    /// A string, as its UTF-8 bytes.
    public mutating func string() -> [UInt8] {
        tag(4)
        return take(Int(UInt32(truncatingIfNeeded: length())))
    }

    public mutating func bytes() -> [UInt8] {
        tag(5)
        return take(Int(UInt32(truncatingIfNeeded: length())))
    }

    public mutating func address() -> Address {
        tag(6)
        return Address(bytes: take(32))
    }

    mutating func length() -> UInt64 { take(4).reduce(0) { $0 << 8 | UInt64($1) } }

    /// Reverts if values are left over.
    public func end() {
        if offset != data.count { Chain.revert("unexpected extra arguments") }
    }
}

/// Values in the ABI's encoding: results, arguments of calls to other contracts, and a
/// compact way to store records.
public struct Values {
    public internal(set) var data: [UInt8] = []

    public init() {}

    mutating func word(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func length(_ count: Int) {
        let value = UInt32(count)
        for shift in stride(from: 24, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    public mutating func u64(_ value: UInt64) {
        data.append(1)
        word(value)
    }

    public mutating func i64(_ value: Int64) {
        data.append(2)
        word(UInt64(bitPattern: value))
    }

    public mutating func bool(_ value: Bool) {
        data.append(3)
        data.append(value ? 1 : 0)
    }

    public mutating func string(_ value: [UInt8]) {
        data.append(4)
        length(value.count)
        data += value
    }

    public mutating func string(_ value: StaticString) { string(literal(value)) }

    public mutating func bytes(_ value: [UInt8]) {
        data.append(5)
        length(value.count)
        data += value
    }

    public mutating func address(_ value: Address) {
        data.append(6)
        data += value.bytes
    }

    /// Appends values that are already encoded (a stored record, another call's output).
    public mutating func append(encoded: [UInt8]) { data += encoded }
}

// MARK: The chain

public enum Chain {
    /// Who called this method: the transaction's signer, or the contract that called.
    public static var caller: Address { Address.read { civitas_caller($0) } }
    /// The transaction's signer, however deep the call.
    public static var origin: Address { Address.read { civitas_origin($0) } }
    /// This contract.
    public static var this: Address { Address.read { civitas_self_address($0) } }
    public static var blockHeight: UInt64 { civitas_block_height() }

    /// Ends the call: the transaction fails with `message` and nothing it wrote stays.
    public static func revert(_ message: StaticString) -> Never {
        withBytes(message) { civitas_revert($0, $1) }
        fatalError()
    }

    public static func revert(_ message: [UInt8]) -> Never {
        withBytes(message) { civitas_revert($0, $1) }
        fatalError()
    }

    /// Requires a condition, reverting with `message` when it does not hold.
    public static func require(_ condition: Bool, _ message: StaticString) {
        if !condition { revert(message) }
    }

    /// The method's result (queries show it; transactions record only events).
    public static func output(_ values: Values) {
        withBytes(values.data) { civitas_return_data($0, $1) }
    }

    /// An event in the receipt: module `contract`, this name, the contract's address,
    /// and the attributes (at most 15 pairs, 4 KiB in all).
    public static func emit(_ name: StaticString, _ attributes: [(StaticString, [UInt8])] = []) {
        var encoded = Values()
        encoded.length(attributes.count)
        for (key, value) in attributes {
            encoded.length(key.utf8CodeUnitCount)
            encoded.data += literal(key)
            encoded.length(value.count)
            encoded.data += value
        }
        withBytes(name) { namePointer, nameLength in
            withBytes(encoded.data) { civitas_emit_event(namePointer, nameLength, $0, $1) }
        }
    }

    /// A line for the node's query output (dropped in transactions).
    public static func log(_ message: [UInt8]) {
        withBytes(message) { civitas_log($0, $1) }
    }

    public static func log(_ message: StaticString) { withBytes(message) { civitas_log($0, $1) } }

    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { buffer in withBytes(data) { civitas_hash_sha256($0, $1, buffer.baseAddress) } }
        return out
    }

    public static func sm3(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { buffer in withBytes(data) { civitas_hash_sm3($0, $1, buffer.baseAddress) } }
        return out
    }

    /// Calls a system module (`kv`, `token`, …) or, through `contract`, another contract,
    /// as this contract. A failure there fails the whole transaction. Returns the output.
    public static func callModule(_ module: StaticString, _ method: StaticString, _ arguments: [UInt8]) -> [UInt8] {
        var capacity = 256
        while true {
            var out = [UInt8](repeating: 0, count: capacity)
            let length = out.withUnsafeMutableBufferPointer { buffer in
                withBytes(module) { modulePointer, moduleLength in
                    withBytes(method) { methodPointer, methodLength in
                        withBytes(arguments) {
                            civitas_call_module(
                                modulePointer, moduleLength, methodPointer, methodLength, $0, $1, buffer.baseAddress, Int32(capacity))
                        }
                    }
                }
            }
            if Int(length) <= capacity { return Array(out[0..<Int(length)]) }
            capacity = Int(length)
        }
    }

    /// Calls a method of another contract and gives its output to read.
    public static func callContract(_ contract: Address, _ method: [UInt8], _ arguments: Values) -> Arguments {
        var encoded = Values()
        encoded.data += contract.bytes
        encoded.length(method.count)
        encoded.data += method
        encoded.length(arguments.data.count)
        encoded.data += arguments.data
        return Arguments(callModule("contract", "call", encoded.data))
    }
}

// MARK: Storage

/// The contract's own storage: keys up to 256 bytes, values up to 16 KiB, kept in the
/// chain's state tree under the contract's address (so each value can be proven).
public enum Storage {
    /// A key made of a literal prefix and parts: `Storage.key("balance/", citizen.bytes)`.
    public static func key(_ prefix: StaticString, _ parts: [UInt8]...) -> [UInt8] {
        var key = literal(prefix)
        for part in parts { key += part }
        return key
    }

    public static func get(_ key: [UInt8]) -> [UInt8]? {
        var capacity = 128
        while true {
            var out = [UInt8](repeating: 0, count: capacity)
            let length = out.withUnsafeMutableBufferPointer { buffer in
                withBytes(key) { civitas_storage_get($0, $1, buffer.baseAddress, Int32(capacity)) }
            }
            if length < 0 { return nil }
            if Int(length) <= capacity { return Array(out[0..<Int(length)]) }
            capacity = Int(length)
        }
    }

    public static func set(_ key: [UInt8], _ value: [UInt8]) {
        withBytes(key) { keyPointer, keyLength in withBytes(value) { civitas_storage_put(keyPointer, keyLength, $0, $1) } }
    }

    public static func delete(_ key: [UInt8]) {
        withBytes(key) { civitas_storage_delete($0, $1) }
    }

    /// A number stored as 8 big-endian bytes; absent is 0.
    public static func u64(_ key: [UInt8]) -> UInt64 {
        guard let value = get(key) else { return 0 }
        if value.count != 8 { Chain.revert("stored value is not a number") }
        return value.reduce(0) { $0 << 8 | UInt64($1) }
    }

    public static func setU64(_ key: [UInt8], _ value: UInt64) {
        var encoded: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) { encoded.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        set(key, encoded)
    }
}
