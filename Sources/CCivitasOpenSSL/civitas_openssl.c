/* SHA-256 through the one-call SHA256_* functions: a context on the stack and the
 * hardware rounds, where EVP allocates a context per hash. OpenSSL 3 still ships them. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "civitas_openssl.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <string.h>

static const char sm2_default_id[] = "1234567812345678";

/* Fetching an algorithm by name takes a lock and a lookup; do it once per process. */
static EVP_MD *sm3_md;
static EC_GROUP *sm2_group;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_algorithms(void) {
    sm3_md = EVP_MD_fetch(NULL, "SM3", NULL);
    sm2_group = EC_GROUP_new_by_curve_name(NID_sm2);
}

void civitas_sha256(const uint8_t *data, size_t length, uint8_t out[32]) {
    SHA256_CTX context;
    SHA256_Init(&context);
    SHA256_Update(&context, data, length);
    SHA256_Final(out, &context);
}

int civitas_sm3(const uint8_t *data, size_t length, uint8_t out[32]) {
    pthread_once(&init_once, init_algorithms);
    if (sm3_md == NULL) return 0;
    unsigned int written = 0;
    return EVP_Digest(data, length, out, &written, sm3_md, NULL) == 1 && written == 32;
}

/* Builds an SM2 key from raw parts; `private_key` may be NULL for a public key. */
static EVP_PKEY *sm2_key(const uint8_t *private_key, const uint8_t public_key[65]) {
    EVP_PKEY *pkey = NULL;
    BIGNUM *scalar = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) goto done;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "SM2", 0)) goto done;
    if (!OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, public_key, 65)) goto done;
    if (private_key != NULL) {
        scalar = BN_bin2bn(private_key, 32, NULL);
        if (scalar == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, scalar)) goto done;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) goto done;
    if (EVP_PKEY_fromdata(ctx, &pkey, private_key ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    BN_clear_free(scalar);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

int civitas_sm2_public_from_private(const uint8_t private_key[32], uint8_t public_key[65]) {
    pthread_once(&init_once, init_algorithms);
    if (sm2_group == NULL) return 0;
    int ok = 0;
    BIGNUM *scalar = BN_bin2bn(private_key, 32, NULL);
    EC_POINT *point = EC_POINT_new(sm2_group);
    const BIGNUM *order = EC_GROUP_get0_order(sm2_group);
    if (scalar == NULL || point == NULL || BN_is_zero(scalar) || BN_cmp(scalar, order) >= 0) goto done;
    if (EC_POINT_mul(sm2_group, point, scalar, NULL, NULL, NULL) != 1) goto done;
    ok = EC_POINT_point2oct(sm2_group, point, POINT_CONVERSION_UNCOMPRESSED, public_key, 65, NULL) == 65;
done:
    EC_POINT_free(point);
    BN_clear_free(scalar);
    return ok;
}

int civitas_sm2_generate(uint8_t private_key[32], uint8_t public_key[65]) {
    int ok = 0;
    EVP_PKEY *pkey = NULL;
    BIGNUM *scalar = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_generate(ctx, &pkey) != 1) goto done;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &scalar) != 1) goto done;
    if (BN_bn2binpad(scalar, private_key, 32) != 32) goto done;
    ok = civitas_sm2_public_from_private(private_key, public_key);
done:
    BN_clear_free(scalar);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static int raw_to_der(const uint8_t signature[64], uint8_t *out, size_t *length) {
    int ok = 0;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(signature, 32, NULL);
    BIGNUM *s = BN_bin2bn(signature + 32, 32, NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        goto done;
    }
    int needed = i2d_ECDSA_SIG(sig, NULL);
    if (needed <= 0 || (size_t)needed > *length) goto done;
    unsigned char *cursor = out;
    *length = (size_t)i2d_ECDSA_SIG(sig, &cursor);
    ok = 1;
done:
    ECDSA_SIG_free(sig);
    return ok;
}

int civitas_sm2_signature_to_der(const uint8_t signature[64], uint8_t *out, size_t *length) {
    return raw_to_der(signature, out, length);
}

int civitas_sm2_signature_from_der(const uint8_t *der, size_t der_length, uint8_t signature[64]) {
    const unsigned char *cursor = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &cursor, (long)der_length);
    if (sig == NULL) return 0;
    int ok = cursor == der + der_length
        && BN_bn2binpad(ECDSA_SIG_get0_r(sig), signature, 32) == 32
        && BN_bn2binpad(ECDSA_SIG_get0_s(sig), signature + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok;
}

/* The distinguishing ID must be set on the context after DigestSign/VerifyInit:
 * passed as an init parameter it is silently ignored, and the signature would then
 * not interoperate with GB/T 32918 implementations. */
int civitas_sm2_sign(const uint8_t private_key[32], const uint8_t public_key[65],
                     const uint8_t *message, size_t length, uint8_t signature[64]) {
    int ok = 0;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY *pkey = sm2_key(private_key, public_key);
    uint8_t der[80];
    size_t der_length = sizeof der;
    if (mctx == NULL || pkey == NULL) goto done;
    if (EVP_DigestSignInit(mctx, &pctx, EVP_sm3(), NULL, pkey) != 1) goto done;
    if (EVP_PKEY_CTX_set1_id(pctx, sm2_default_id, 16) != 1) goto done;
    if (EVP_DigestSign(mctx, der, &der_length, message, length) != 1) goto done;
    ok = civitas_sm2_signature_from_der(der, der_length, signature);
done:
    EVP_PKEY_free(pkey);
    EVP_MD_CTX_free(mctx);
    return ok;
}

int civitas_sm2_verify(const uint8_t public_key[65], const uint8_t *message, size_t length,
                       const uint8_t signature[64]) {
    int ok = 0;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY *pkey = sm2_key(NULL, public_key);
    uint8_t der[80];
    size_t der_length = sizeof der;
    if (mctx == NULL || pkey == NULL || !raw_to_der(signature, der, &der_length)) goto done;
    if (EVP_DigestVerifyInit(mctx, &pctx, EVP_sm3(), NULL, pkey) != 1) goto done;
    if (EVP_PKEY_CTX_set1_id(pctx, sm2_default_id, 16) != 1) goto done;
    ok = EVP_DigestVerify(mctx, der, der_length, message, length) == 1;
done:
    EVP_PKEY_free(pkey);
    EVP_MD_CTX_free(mctx);
    return ok;
}

int civitas_sm2_public_to_der(const uint8_t public_key[65], uint8_t *out, size_t *length) {
    EVP_PKEY *pkey = sm2_key(NULL, public_key);
    if (pkey == NULL) return 0;
    int needed = i2d_PUBKEY(pkey, NULL);
    int ok = 0;
    if (needed > 0 && (size_t)needed <= *length) {
        unsigned char *cursor = out;
        *length = (size_t)i2d_PUBKEY(pkey, &cursor);
        ok = 1;
    }
    EVP_PKEY_free(pkey);
    return ok;
}

int civitas_sm2_private_to_pem(const uint8_t private_key[32], const uint8_t public_key[65], uint8_t *out, size_t *length) {
    EVP_PKEY *pkey = sm2_key(private_key, public_key);
    BIO *bio = BIO_new(BIO_s_mem());
    int ok = 0;
    if (pkey == NULL || bio == NULL) goto done;
    if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) goto done;
    char *data = NULL;
    long size = BIO_get_mem_data(bio, &data);
    if (size <= 0 || (size_t)size > *length) goto done;
    memcpy(out, data, (size_t)size);
    *length = (size_t)size;
    ok = 1;
done:
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return ok;
}
