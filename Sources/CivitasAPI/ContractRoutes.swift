import CivitasCore
import CivitasModules
import CivitasNode
import CivitasVM
import Foundation
import Hummingbird

extension API {
    func contractAddress(_ context: APIRequestContext) throws -> Address {
        let text: String = try context.parameters.require("address")
        return Address(try parseHash(text))
    }

    /// A contract's record and every version.
    func contract(_ context: APIRequestContext) async throws -> Response {
        let address = try contractAddress(context)
        guard let stored = await node.value(ContractKeys.meta(address)) else { throw APIError.notFound("no contract \(address)") }
        let record: ContractRecord
        do { record = try ContractRecord(canonicalBytes: stored) } catch {
            throw APIError(.internalServerError, "state.corrupt", "contract record \(address): \(error)")
        }
        var versions: [ContractView.VersionView] = []
        var number: UInt64 = 1
        while number <= record.version {
            if let bytes = await node.value(ContractKeys.version(address, number)), let version = try? ContractVersion(canonicalBytes: bytes) {
                versions.append(ContractView.VersionView(version: number, codeHash: version.codeHash.hex, height: version.height))
            }
            number += 1
        }
        let view = ContractView(
            address: address.description, owner: record.owner.description, policy: record.policy.name, version: record.version,
            codeHash: record.codeHash.hex, codeSize: record.codeSize, deployedAt: record.deployedAt, upgradedAt: record.upgradedAt,
            versions: versions)
        return try JSONResponse.make(view)
    }

    /// A raw value of a contract's storage, with a proof if asked.
    func contractStorage(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let address = try contractAddress(context)
        let text: String = try context.parameters.require("key")
        let key = try KeyText.decode(text)
        return try await value(ContractKeys.storage(address, key), request: request)
    }

    /// Runs a contract method read-only on the latest committed state.
    func queryContract(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let address = try contractAddress(context)
        let bytes = try await body(request, max: limits.requestBytesMax)
        let query: ContractQueryRequest
        do { query = try JSONDecoder().decode(ContractQueryRequest.self, from: Data(bytes)) } catch {
            throw APIError.badRequest("expected {\"method\": …, \"args\": [values]}: \(JSONErrorText.describe(error))")
        }
        guard !query.method.isEmpty, query.method.utf8.count <= ContractLimits.methodBytesMax else {
            throw APIError.badRequest("method must have 1 to \(ContractLimits.methodBytesMax) bytes")
        }
        if query.args != nil && query.argsHex != nil { throw APIError.badRequest("give args or argsHex, not both") }
        var arguments: [UInt8] = []
        if let values = query.args { arguments = ContractValue.encode(values) }
        if let hex = query.argsHex {
            guard let raw = [UInt8](hex: hex) else { throw APIError.badRequest("argsHex must be hex") }
            arguments = raw
        }
        guard arguments.count <= ProtocolLimits.callArgumentsBytesMax else {
            throw APIError(.contentTooLarge, "api.request_too_large", "arguments exceed \(ProtocolLimits.callArgumentsBytesMax) bytes")
        }
        var caller = Address(Hash.zero)
        if let text = query.caller { caller = Address(try parseHash(text)) }
        let gasLimit: UInt64 = min(query.gasLimit ?? ContractLimits.queryGasDefault, ContractLimits.queryGasMax)
        let answer = await node.queryContract(address, method: query.method, arguments: arguments, caller: caller, gasLimit: gasLimit)
        if answer.result.error?.code == "contract.not_found" { throw APIError.notFound("no contract \(address)") }
        return try JSONResponse.make(ContractQueryView(answer.result, height: answer.height))
    }
}
