//! RSA keys for the warehouses' JWTs: PEM (PKCS#1 or PKCS#8) in, an RS256 signer and the
//! public key's SHA-256 fingerprint out.
//!
//! Snowflake's key-pair auth names the key by `SHA256:<base64 of SHA-256 of the DER
//! SubjectPublicKeyInfo>`, the same value `DESCRIBE USER` shows as `RSA_PUBLIC_KEY_FP`; the
//! public key is derived from the private key here (modulus and exponent), so a user configures
//! one file. Only the little DER this needs is read and written; the signing itself is
//! `jsonwebtoken` on aws-lc-rs.

use sha2::{Digest, Sha256};

/// An RSA private key ready to sign RS256 JWTs.
#[derive(Clone)]
pub struct RsaKey {
    /// PKCS#1 `RSAPrivateKey` DER.
    pkcs1: Vec<u8>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKey(***)")
    }
}

impl RsaKey {
    /// Parses a PEM `RSA PRIVATE KEY` (PKCS#1) or unencrypted `PRIVATE KEY` (PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pem = pem.replace("\\n", "\n");
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err("the private key is encrypted: export it unencrypted (openssl pkcs8 -topk8 -nocrypt)".into());
        }
        let (label, der) = pem_body(&pem)?;
        let pkcs1 = match label.as_str() {
            "RSA PRIVATE KEY" => der,
            "PRIVATE KEY" => pkcs8_inner(&der)?,
            other => {
                return Err(format!(
                    "expected an RSA PRIVATE KEY or PRIVATE KEY PEM block, found `{other}`"
                ));
            }
        };
        // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
        let mut seq = Der::new(&pkcs1).sequence()?;
        seq.integer()?;
        let modulus = strip_zeros(seq.integer()?).to_vec();
        let exponent = strip_zeros(seq.integer()?).to_vec();
        Ok(Self {
            pkcs1,
            modulus,
            exponent,
        })
    }

    /// The DER `SubjectPublicKeyInfo` of the public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        let rsa_public = der_seq(&[der_int(&self.modulus), der_int(&self.exponent)]);
        let algorithm = der_seq(&[
            // OID 1.2.840.113549.1.1.1 rsaEncryption, then NULL parameters.
            vec![
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ],
            vec![0x05, 0x00],
        ]);
        let mut bits = vec![0u8];
        bits.extend_from_slice(&rsa_public);
        der_seq(&[algorithm, der_tlv(0x03, &bits)])
    }

    /// `SHA256:<base64>` of the public key, as Snowflake's JWT issuer names it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.public_key_der());
        format!("SHA256:{}", base64_std(&digest))
    }

    /// The public modulus and exponent (big-endian, no leading zeros).
    pub fn public_components(&self) -> (&[u8], &[u8]) {
        (&self.modulus, &self.exponent)
    }

    /// Signs `claims` as an RS256 JWT.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, String> {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&self.pkcs1);
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| format!("signing the JWT: {e}"))
    }
}

fn strip_zeros(mut bytes: &[u8]) -> &[u8] {
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes = &bytes[1..];
    }
    bytes
}

/// The label and decoded body of the first PEM block of `pem`.
fn pem_body(pem: &str) -> Result<(String, Vec<u8>), String> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or("no `-----BEGIN` line: not a PEM key")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----").ok_or("unterminated PEM BEGIN line")?;
    let label = rest[..label_end].trim().to_string();
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or_else(|| format!("no `-----END {label}-----` line"))?;
    let text: String = body[..end]
        .lines()
        .filter(|l| !l.contains(':'))
        .collect::<String>()
        .split_whitespace()
        .collect();
    Ok((label, base64_decode(&text)?))
}

/// The PKCS#1 key inside a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_inner(der: &[u8]) -> Result<Vec<u8>, String> {
    let mut seq = Der::new(der).sequence()?;
    seq.integer()?;
    let algorithm = seq.take(0x30)?;
    // rsaEncryption OID bytes.
    let rsa_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    if !algorithm.windows(rsa_oid.len()).any(|w| w == rsa_oid) {
        return Err(
            "the PKCS#8 key is not an RSA key (Snowflake and Google need RSA 2048+)".into(),
        );
    }
    Ok(seq.take(0x04)?.to_vec())
}

/// A reader over DER bytes: just sequences, integers and opaque values.
struct Der<'a> {
    bytes: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let bad = || "malformed DER in the key".to_string();
        let (&t, rest) = self.bytes.split_first().ok_or_else(bad)?;
        if t != tag {
            return Err(format!(
                "malformed key: expected DER tag {tag:#04x}, found {t:#04x}"
            ));
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(bad());
        }
        let (value, tail) = rest.split_at(len);
        self.bytes = tail;
        Ok(value)
    }

    fn sequence(&mut self) -> Result<Der<'a>, String> {
        Ok(Der::new(self.take(0x30)?))
    }

    fn integer(&mut self) -> Result<&'a [u8], String> {
        self.take(0x02)
    }
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(value.len()));
    out.extend_from_slice(value);
    out
}

fn der_int(unsigned: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(unsigned.len() + 1);
    if unsigned.first().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(unsigned);
    der_tlv(0x02, &v)
}

fn der_seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der_tlv(0x30, &parts.concat())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_std(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => {
                return Err(format!(
                    "invalid base64 character `{}` in the key",
                    c as char
                ));
            }
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/it/files/export_test_key.pem");
    const PUBLIC: &str = include_str!("../../tests/it/files/export_test_key.pub.pem");

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = base64_std(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_std(b"fo"), "Zm8=");
    }

    #[test]
    fn public_key_derived_from_the_private_key_matches_openssl() {
        let key = RsaKey::from_pem(KEY).unwrap();
        let (_, spki) = pem_body(PUBLIC).unwrap();
        assert_eq!(key.public_key_der(), spki);
        let expected = format!("SHA256:{}", base64_std(&Sha256::digest(&spki)));
        assert_eq!(key.fingerprint(), expected);
    }

    #[test]
    fn pem_with_escaped_newlines_from_an_env_var_parses() {
        let escaped = KEY.replace('\n', "\\n");
        assert!(RsaKey::from_pem(&escaped).is_ok());
    }

    #[test]
    fn refuses_what_is_not_an_rsa_private_key() {
        assert!(RsaKey::from_pem("hello").is_err());
        assert!(RsaKey::from_pem(PUBLIC).unwrap_err().contains("PUBLIC KEY"));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        assert!(RsaKey::from_pem(enc).unwrap_err().contains("encrypted"));
    }

    #[test]
    fn signed_jwt_verifies_with_the_public_key() {
        let key = RsaKey::from_pem(KEY).unwrap();
        let token = key
            .sign(&serde_json::json!({"sub": "x", "exp": 4_102_444_800u64}))
            .unwrap();
        let (n, e) = key.public_components();
        let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "x");
    }
}
