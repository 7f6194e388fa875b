import Foundation

/// A parsed JSON value that keeps booleans and numbers apart, which
/// `JSONSerialization` does not do portably.
indirect enum JSONValue: Decodable, Equatable, CustomStringConvertible {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    static func parse(_ data: some DataProtocol) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(data))
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    var string: String? { if case .string(let value) = self { value } else { nil } }
    var object: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
    var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    var number: Double? { if case .number(let value) = self { value } else { nil } }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .number(let value): "\(value)"
        case .string(let value): "\"\(value.prefix(80))\""
        case .array(let value): "[\(value.count) items]"
        case .object(let value): "{\(value.keys.sorted().joined(separator: ","))}"
        }
    }
}

/// The part of JSON Schema that `docs/openapi.json` uses: `$ref`, `type`, `properties`,
/// `required`, `additionalProperties`, `items`, `maxItems`, `enum`, `pattern`, `minimum`.
/// A keyword outside that set is reported, so the document cannot quietly rely on one
/// the test does not check.
struct SchemaValidator {
    let document: JSONValue

    static let keywords: Set<String> = [
        "$ref", "type", "properties", "required", "additionalProperties", "items", "maxItems", "enum", "pattern",
        "minimum", "description", "format",
    ]

    /// The problems found, each with its JSON path; empty when `value` matches.
    func validate(_ value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        guard let rules = schema.object else { return ["\(path): schema is not an object"] }
        if let unknown = rules.keys.first(where: { !Self.keywords.contains($0) }) {
            return ["\(path): schema keyword \(unknown) is not checked by this validator"]
        }
        if let reference = rules["$ref"]?.string {
            guard let target = resolve(reference) else { return ["\(path): unresolved \(reference)"] }
            return validate(value, against: target, at: path)
        }
        var problems: [String] = []
        if let allowed = rules["enum"]?.array, !allowed.contains(value) {
            problems.append("\(path): \(value) is not one of \(allowed.map(\.description))")
        }
        switch rules["type"]?.string {
        case "object":
            guard let object = value.object else { return problems + ["\(path): expected an object, got \(value)"] }
            let properties = rules["properties"]?.object ?? [:]
            for name in rules["required"]?.array?.compactMap(\.string) ?? [] where object[name] == nil {
                problems.append("\(path): missing required \(name)")
            }
            for (name, member) in object {
                if let property = properties[name] {
                    problems += validate(member, against: property, at: "\(path).\(name)")
                } else if let extra = rules["additionalProperties"], extra.object != nil {
                    problems += validate(member, against: extra, at: "\(path).\(name)")
                } else if rules["additionalProperties"] == .bool(false) {
                    problems.append("\(path): undocumented field \(name)")
                }
            }
        case "array":
            guard let array = value.array else { return problems + ["\(path): expected an array, got \(value)"] }
            if let maxItems = rules["maxItems"]?.number, Double(array.count) > maxItems {
                problems.append("\(path): \(array.count) items, at most \(Int(maxItems))")
            }
            if let items = rules["items"] {
                for (index, item) in array.enumerated() {
                    problems += validate(item, against: items, at: "\(path)[\(index)]")
                }
            }
        case "string":
            guard let string = value.string else { return problems + ["\(path): expected a string, got \(value)"] }
            if let pattern = rules["pattern"]?.string, string.range(of: pattern, options: .regularExpression) == nil {
                problems.append("\(path): \(string.prefix(80)) does not match \(pattern)")
            }
        case "integer":
            guard let number = value.number, number.rounded() == number else {
                return problems + ["\(path): expected an integer, got \(value)"]
            }
            if let minimum = rules["minimum"]?.number, number < minimum {
                problems.append("\(path): \(number) is below \(minimum)")
            }
        case "boolean":
            guard case .bool = value else { return problems + ["\(path): expected a boolean, got \(value)"] }
        case nil:
            break
        case let other?:
            problems.append("\(path): type \(other) is not checked by this validator")
        }
        return problems
    }

    func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: JSONValue? = document
        for part in reference.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }
}
