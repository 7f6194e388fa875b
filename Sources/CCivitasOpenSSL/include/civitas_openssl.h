#ifndef CIVITAS_OPENSSL_H
#define CIVITAS_OPENSSL_H

#include <stddef.h>
#include <stdint.h>

/* The national suite from the system OpenSSL 3: SM3 hashing and SM2 signatures
 * (GB/T 32918, default identifier "1234567812345678"). Keys are raw: a 32-byte
 * big-endian private scalar and a 65-byte uncompressed public point. Signatures are
 * raw r||s, 32 bytes each. Every function returns 1 on success and 0 on failure. */

int civitas_sm3(const uint8_t *data, size_t length, uint8_t out[32]);
/* SHA-256 of the international suite (cannot fail). */
void civitas_sha256(const uint8_t *data, size_t length, uint8_t out[32]);

int civitas_sm2_generate(uint8_t private_key[32], uint8_t public_key[65]);
int civitas_sm2_public_from_private(const uint8_t private_key[32], uint8_t public_key[65]);
int civitas_sm2_sign(const uint8_t private_key[32], const uint8_t public_key[65],
                     const uint8_t *message, size_t length, uint8_t signature[64]);
int civitas_sm2_verify(const uint8_t public_key[65], const uint8_t *message, size_t length,
                       const uint8_t signature[64]);

/* Conversions for interoperating with other SM2 tools (the openssl command line):
 * DER SubjectPublicKeyInfo, PKCS#8 PEM private key, DER ECDSA-Sig-Value signature.
 * `*length` holds the buffer size on entry and the written size on return. */
int civitas_sm2_public_to_der(const uint8_t public_key[65], uint8_t *out, size_t *length);
int civitas_sm2_private_to_pem(const uint8_t private_key[32], const uint8_t public_key[65], uint8_t *out, size_t *length);
int civitas_sm2_signature_to_der(const uint8_t signature[64], uint8_t *out, size_t *length);
int civitas_sm2_signature_from_der(const uint8_t *der, size_t der_length, uint8_t signature[64]);

#endif
