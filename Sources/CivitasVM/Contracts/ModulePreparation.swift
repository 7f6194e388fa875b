import CivitasCore
import WasmParser

/// Adds an export for every global of a module (named with the host's reserved prefix),
/// so the host can read and restore globals the contract keeps to itself, such as the
/// stack pointer. The stored code is not changed; only the runtime's copy.
enum ModulePreparation {
    static func exportingGlobals(_ code: [UInt8]) throws(ExecutionError) -> (code: [UInt8], mutableGlobals: [String]) {
        var mutability: [Bool] = []
        do {
            var parser = Parser(bytes: code, features: ContractValidator.features)
            while let payload = try parser.parseNext() {
                if case .globalSection(let globals) = payload { mutability = globals.map { $0.type.mutability == .variable } }
            }
        } catch {
            throw ExecutionError("contract.malformed", "stored code does not parse: \(error)")
        }
        let names = mutability.indices.map { "\(ContractRuntime.reservedExportPrefix)global:\($0)" }
        guard !names.isEmpty else { return (code, []) }
        var output = Array(code[0..<8])
        var offset = 8
        while offset < code.count {
            let id = code[offset]
            let (size, sizeBytes) = try leb(code, offset + 1)
            let payload = offset + 1 + sizeBytes
            let end = payload + size
            guard end <= code.count else { throw ExecutionError("contract.malformed", "section runs past the end") }
            if id == 7 {
                let (count, countBytes) = try leb(code, payload)
                var section = encodeLEB(count + names.count)
                section += code[(payload + countBytes)..<end]
                for (index, name) in names.enumerated() {
                    section += encodeLEB(name.utf8.count) + Array(name.utf8) + [0x03] + encodeLEB(index)
                }
                output += [7] + encodeLEB(section.count) + section
            } else {
                output += code[offset..<end]
            }
            offset = end
        }
        return (output, zip(names, mutability).filter(\.1).map(\.0))
    }

    static func leb(_ bytes: [UInt8], _ start: Int) throws(ExecutionError) -> (value: Int, length: Int) {
        var value = 0
        var shift = 0
        var index = start
        while index < bytes.count, shift < 35 {
            let byte = bytes[index]
            value |= Int(byte & 0x7f) << shift
            index += 1
            if byte & 0x80 == 0 { return (value, index - start) }
            shift += 7
        }
        throw ExecutionError("contract.malformed", "bad section length")
    }

    static func encodeLEB(_ value: Int) -> [UInt8] {
        var rest = value
        var bytes: [UInt8] = []
        repeat {
            var byte = UInt8(rest & 0x7f)
            rest >>= 7
            if rest != 0 { byte |= 0x80 }
            bytes.append(byte)
        } while rest != 0
        return bytes
    }
}
