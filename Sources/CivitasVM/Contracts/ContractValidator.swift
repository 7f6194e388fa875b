import CivitasCore
import WasmKit
import WasmParser

/// The checks a module passes before it may be deployed. Everything that could make two
/// nodes disagree or let a contract escape its limits is refused here, once, so calls
/// need not look again: floating point (NaN bit patterns differ between machines),
/// imports the host does not give, a start function (code that runs outside a metered
/// call), memory or tables beyond the limits, and proposals beyond the core spec.
public enum ContractValidator {
    /// The WebAssembly proposals a contract may use beyond what the parser always accepts
    /// (bulk memory, sign extension, multi-value, mutable globals): reference types, as
    /// LLVM encodes `call_indirect` table indices in their longer form.
    public static let features: WasmFeatureSet = [.referenceTypes]

    public static func validate(_ code: [UInt8]) throws(ExecutionError) {
        guard code.count <= ContractLimits.codeBytesMax else {
            throw refused("contract.too_large", "code of \(code.count) bytes exceeds \(ContractLimits.codeBytesMax)")
        }
        var scan = Scan()
        do {
            var parser = Parser(bytes: code, features: features)
            while let payload = try parser.parseNext() {
                try scan.visit(payload)
            }
        } catch let error as ExecutionError {
            throw error
        } catch {
            throw refused("contract.malformed", "not a valid WebAssembly module: \(error)")
        }
        try scan.finish()
        // Type-checks every function body (the scan only looked at opcodes): an eager
        // engine translates all of them while instantiating against stand-in imports.
        do {
            let module = try parseWasm(bytes: code, features: features)
            let store = Store(engine: Engine(configuration: EngineConfiguration(compilationMode: .eager)))
            var imports = Imports()
            for (name, type) in HostFunction.signatures {
                imports.define(
                    module: HostFunction.moduleName, name: name,
                    Function(store: store, type: type) { _, _ in throw HostFunction.NotCallable() })
            }
            _ = try module.instantiate(store: store, imports: imports)
        } catch {
            throw refused("contract.malformed", "module does not validate: \(firstLine(of: error))")
        }
    }

    static func refused(_ code: String, _ message: String) -> ExecutionError {
        ExecutionError(code, String(message.prefix(ProtocolLimits.errorMessageBytesMax / 2)))
    }

    private struct Scan {
        var types: [FunctionType?] = []
        var functionTypes: [FunctionType?] = []
        var hasMemory = false
        var exports: [Export] = []

        mutating func visit(_ payload: ParsingPayload) throws(ExecutionError) {
            switch payload {
            case .header, .customSection, .dataSection, .dataCount, .elementSection:
                break
            case .typeSection(let groups):
                for group in groups {
                    for subtype in group.types {
                        guard case .function(let type) = subtype.body else {
                            throw refused("contract.forbidden", "only function types are allowed")
                        }
                        try checkNoFloat(type.parameters + type.results, "a function type")
                        types.append(type)
                    }
                }
            case .importSection(let imports):
                for entry in imports {
                    guard case .function(let index) = entry.descriptor else {
                        throw refused("contract.forbidden_import", "import \(entry.module).\(entry.name) is not a function")
                    }
                    guard entry.module == HostFunction.moduleName, let expected = HostFunction.signatures[entry.name] else {
                        throw refused("contract.forbidden_import", "the host provides no \(entry.module).\(entry.name)")
                    }
                    let declared = Int(index) < types.count ? types[Int(index)] : nil
                    guard declared == expected else {
                        throw refused(
                            "contract.forbidden_import",
                            "import \(entry.module).\(entry.name) has the signature \(declared.map { "\($0)" } ?? "?"), not \(expected)")
                    }
                    functionTypes.append(declared)
                }
            case .functionSection(let indices):
                guard functionTypes.count + indices.count <= ContractLimits.functionsMax else {
                    throw refused("contract.too_large", "more than \(ContractLimits.functionsMax) functions")
                }
                for index in indices {
                    functionTypes.append(Int(index) < types.count ? types[Int(index)] : nil)
                }
            case .tableSection(let tables):
                for table in tables where table.type.limits.min > ContractLimits.tableElementsMax
                    || (table.type.limits.max ?? 0) > ContractLimits.tableElementsMax
                {
                    _ = table
                    throw refused("contract.limits", "a table may hold at most \(ContractLimits.tableElementsMax) elements")
                }
            case .memorySection(let memories):
                guard memories.count <= 1 else { throw refused("contract.limits", "at most one memory") }
                if let memory = memories.first {
                    let limits = memory.type
                    guard !limits.shared, !limits.isMemory64 else {
                        throw refused("contract.forbidden", "shared and 64-bit memories are not allowed")
                    }
                    guard limits.min <= ContractLimits.memoryPagesMax, (limits.max ?? 0) <= ContractLimits.memoryPagesMax else {
                        throw refused(
                            "contract.limits", "memory may declare at most \(ContractLimits.memoryPagesMax) pages of 64 KiB")
                    }
                    hasMemory = true
                }
            case .globalSection(let globals):
                guard globals.count <= ContractLimits.globalsMax else {
                    throw refused("contract.too_large", "more than \(ContractLimits.globalsMax) globals")
                }
                for global in globals { try checkNoFloat([global.type.valueType], "a global") }
            case .tagSection:
                throw refused("contract.forbidden", "exception tags are not allowed")
            case .exportSection(let entries):
                guard entries.count <= ContractLimits.exportsMax else {
                    throw refused("contract.too_large", "more than \(ContractLimits.exportsMax) exports")
                }
                if let reserved = entries.first(where: { $0.name.hasPrefix(ContractRuntime.reservedExportPrefix) }) {
                    throw refused("contract.forbidden", "export names starting with \(ContractRuntime.reservedExportPrefix) are the host's (\(reserved.name))")
                }
                exports = entries
            case .startSection:
                throw refused("contract.start_function", "a contract may not have a start function: code runs only in metered calls")
            case .codeSection(let bodies):
                for body in bodies {
                    try checkNoFloat(body.locals, "a local variable")
                    try checkNoFloatInstructions(body)
                }
            }
        }

        func finish() throws(ExecutionError) {
            guard hasMemory, exports.contains(where: { $0.name == "memory" && $0.descriptor == .memory(0) }) else {
                throw refused("contract.missing_export", "a contract must define and export its memory as \"memory\"")
            }
            for (name, type) in HostFunction.exports {
                guard let export = exports.first(where: { $0.name == name }), case .function(let index) = export.descriptor else {
                    throw refused("contract.missing_export", "a contract must export the function \(name)")
                }
                guard Int(index) < functionTypes.count, functionTypes[Int(index)] == type else {
                    throw refused("contract.missing_export", "export \(name) must have the signature \(type)")
                }
            }
        }

        func checkNoFloat(_ types: [ValueType], _ what: String) throws(ExecutionError) {
            for type in types {
                switch type {
                case .i32, .i64: continue
                case .f32, .f64: throw refused("contract.float", "\(what) uses floating point, which is not deterministic")
                default: throw refused("contract.forbidden", "\(what) uses the type \(type); contracts use i32 and i64 only")
                }
            }
        }

        func checkNoFloatInstructions(_ body: Code) throws(ExecutionError) {
            var parser = ExpressionParser(code: body)
            var visitor = FloatFinder()
            do {
                while let visit = try parser.parse() {
                    try visit(visitor: &visitor)
                }
            } catch let error as ExecutionError {
                throw error
            } catch {
                throw refused("contract.malformed", "bad function body: \(error)")
            }
        }
    }

    /// Refuses every instruction that reads, writes or converts a floating-point value.
    /// The instruction's own spelling names its types (`f64Add`, `i32TruncF32S`,
    /// `f32Load`), which covers the whole float part of the instruction set.
    /// Also refuses the instructions that change an instance's tables or drop its
    /// segments: instances are reused between calls, reset to their state after
    /// instantiation by restoring memory and globals, and that reset must be complete.
    private struct FloatFinder: AnyInstructionVisitor {
        typealias VisitorError = ExecutionError
        var binaryOffset = 0

        mutating func visit(_ instruction: Instruction) throws(ExecutionError) {
            switch instruction {
            case .dataDrop, .elemDrop, .tableSet, .tableGrow, .tableFill, .tableCopy, .tableInit:
                throw refused("contract.forbidden", "\(instruction) at byte \(binaryOffset): contracts may not change tables or drop segments")
            default: break
            }
            let spelling = String(describing: instruction).lowercased()
            if spelling.contains("f32") || spelling.contains("f64") {
                throw refused(
                    "contract.float", "floating-point instruction at byte \(binaryOffset) is not deterministic")
            }
        }
    }

    static func firstLine(of error: any Error) -> String {
        let text = String(describing: error)
        return String(text.prefix(while: { $0 != "\n" }).prefix(400))
    }
}
