import Crypto
import Foundation
import SwiftASN1
import X509

public struct TLSIdentityError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "tls: \(message)" }
}

/// A certificate with its private key, both PEM: an organisation's CA, or one of its
/// nodes' certificates issued by that CA.
public struct TLSIdentity: Sendable, Equatable {
    public var certificatePEM: String
    public var privateKeyPEM: String

    public init(certificatePEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A self-signed CA for one organisation (ECDSA P-256), valid for `years`. The
    /// genesis names its certificate; only certificates it issues may join the network
    /// as that organisation's nodes.
    /// `seed` (32 bytes) makes the key and serial number reproducible, for simulations
    /// that must replay exactly; real networks leave it out.
    public static func makeAuthority(organisation: String, years: Int = 10, now: Date = Date(), seed: [UInt8]? = nil) throws -> TLSIdentity {
        let key = try seed.map { try P256.Signing.PrivateKey(rawRepresentation: $0) } ?? P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName(organisation)
            CommonName("\(organisation) Civitas CA")
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
        }
        let serial = seed.map { Certificate.SerialNumber(bytes: Array($0.prefix(16))) } ?? .init()
        let certificate = try Certificate(
            version: .v3, serialNumber: serial, publicKey: .init(key.publicKey), notValidBefore: now.addingTimeInterval(-3_600),
            notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86_400), issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: .init(key))
        return TLSIdentity(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }

    /// A node certificate issued by this authority, for both ends of a TLS connection.
    public func issueNode(named node: String, years: Int = 5, now: Date = Date()) throws -> TLSIdentity {
        let authority = try Certificate(pemEncoded: certificatePEM)
        let authorityKey = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        let key = P256.Signing.PrivateKey()
        let organisation = authority.subject.organisationName ?? "unknown"
        let subject = try DistinguishedName {
            OrganizationName(organisation)
            CommonName(node)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectAlternativeNames([.dnsName(node)])
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: now.addingTimeInterval(-3_600),
            notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86_400), issuer: authority.subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: .init(authorityKey))
        return TLSIdentity(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }
}

extension DistinguishedName {
    var organisationName: String? {
        for relative in self {
            for attribute in relative where attribute.type == .RDNAttributeType.organizationName {
                if let text = String(attribute.value) { return text }
            }
        }
        return nil
    }
}

/// Facts about a peer's certificate that the handshake checks.
public struct PeerCertificate: Sendable {
    public let der: [UInt8]
    /// SHA-256 of the DER certificate: what a validator's hello signature binds to.
    public let fingerprint: [UInt8]
    public let issuerDER: [UInt8]

    public init(der: [UInt8]) throws {
        let certificate = try Certificate(derEncoded: der)
        self.der = der
        fingerprint = Array(SHA256.hash(data: der))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate.issuer)
        issuerDER = serializer.serializedBytes
    }

    /// Whether the certificate names `authorityPEM`'s subject as its issuer. The TLS
    /// layer has already checked the chain against all genesis authorities; this ties
    /// the peer to the organisation of the validator it claims to be.
    public func isIssued(by authorityPEM: String) -> Bool {
        guard let authority = try? Certificate(pemEncoded: authorityPEM) else { return false }
        var serializer = DER.Serializer()
        guard (try? serializer.serialize(authority.subject)) != nil else { return false }
        return serializer.serializedBytes == issuerDER
    }
}
