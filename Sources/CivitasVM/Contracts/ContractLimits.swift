import CivitasCore

/// Bounds on what a contract may be and do. Part of the consensus rules: a node with
/// other limits would accept or fail different transactions.
public enum ContractLimits {
    public static let codeBytesMax = 96 * 1024
    /// 64 KiB pages of linear memory, declared or grown.
    public static let memoryPagesMax: UInt64 = 64
    public static let tableElementsMax: UInt64 = 4_096
    public static let functionsMax = 8_192
    public static let globalsMax = 512
    public static let exportsMax = 256
    /// Contract frames on one call stack (contract → module → contract …).
    public static let callDepthMax = 8
    public static let storageKeyBytesMax = 256
    public static let storageValueBytesMax = 16 * 1024
    /// Name plus attribute keys and values of one event.
    public static let eventBytesMax = 4 * 1024
    public static let returnBytesMax = 16 * 1024
    public static let logBytesMax = 1_024
    public static let methodBytesMax = ProtocolLimits.methodNameBytesMax
    /// Gas a read-only query may use when the caller names no limit.
    public static let queryGasDefault: UInt64 = 10_000_000
    public static let queryGasMax: UInt64 = 100_000_000
}

/// What contract execution costs beyond one unit of gas per WebAssembly instruction.
public enum ContractGas {
    /// Instantiating the module for a call: allocation, data segments, tables.
    public static let callBase: UInt64 = 5_000
    public static let callPerCodeKiB: UInt64 = 100
    public static let memoryPage: UInt64 = 2_000
    /// Per byte copied between the contract's memory and the host.
    public static let copyPerByte: UInt64 = 1
    public static let hostCallBase: UInt64 = 100
    public static let deployPerByte: UInt64 = 50
    public static let log: UInt64 = 100
}

/// Where contracts live in the state tree.
public enum ContractKeys {
    public static let metaPrefix = Array("contract/meta/".utf8)
    public static let codePrefix = Array("contract/code/".utf8)
    public static let storePrefix = Array("contract/store/".utf8)
    public static let versionPrefix = Array("contract/version/".utf8)
    public static let upgradePrefix = Array("contract/upgrade/".utf8)
    public static let deployedPrefix = Array("contract/deployed/".utf8)
    /// Code is stored in chunks so a value stays far below the state's value limit.
    public static let codeChunkBytes = 32 * 1024

    public static func meta(_ contract: Address) -> [UInt8] { metaPrefix + contract.hash.bytes }
    public static func storage(_ contract: Address, _ key: [UInt8]) -> [UInt8] { storePrefix + contract.hash.bytes + key }
    public static func codeChunk(_ codeHash: Hash, _ index: Int) -> [UInt8] {
        codePrefix + codeHash.bytes + [UInt8(index >> 8 & 0xff), UInt8(index & 0xff)]
    }
    public static func version(_ contract: Address, _ number: UInt64) -> [UInt8] {
        var writer = CanonicalWriter(capacity: 8)
        writer.u64(number)
        return versionPrefix + contract.hash.bytes + writer.bytes
    }
    /// How many contracts an address has deployed: the next address's sequence number.
    public static func deployCounter(_ deployer: Address) -> [UInt8] { deployedPrefix + deployer.hash.bytes }
    public static func upgradeProposal(_ contract: Address) -> [UInt8] { upgradePrefix + contract.hash.bytes }
}
