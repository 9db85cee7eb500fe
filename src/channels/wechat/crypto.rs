//! WeChat callback cryptography: the SHA-1 request signatures (`signature`
//! over token, timestamp and nonce; `msg_signature` with the `Encrypt` text
//! as a fourth string), their constant-time check, and the safe-mode
//! message cipher (AES-256-CBC, IV = first 16 key bytes, PKCS#7 to 32 bytes
//! by hand, plaintext `random(16) ‖ msg_len(4, BE, bytes) ‖ msg ‖ AppID`).
//! Nothing here knows HTTP or XML.

use std::fmt;

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// WeChat pads to multiples of 32 bytes, not to the AES block size.
const PAD_BLOCK: usize = 32;
/// `random(16) ‖ msg_len(4)` precede the message.
const HEADER: usize = 20;
/// An EncodingAESKey is 43 Base64 characters without the final `=`.
const KEY_CHARS: usize = 43;

/// Decodes the EncodingAESKey: most real keys have non-zero trailing bits,
/// which the standard engine refuses.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Why a key could not be used or a message could not be decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("EncodingAESKey must be 43 Base64 characters decoding to 32 bytes")]
    BadKey,
    #[error("Encrypt is not valid Base64")]
    BadBase64,
    #[error("ciphertext length is not a non-zero multiple of 32 bytes")]
    BadCiphertextLength,
    #[error("PKCS#7 padding is not 1..=32 bytes of the pad value (wrong key?)")]
    BadPadding,
    #[error("decrypted message is shorter than its 20-byte header")]
    TooShort,
    #[error("declared message length runs past the decrypted buffer")]
    BadLength,
    #[error("decrypted message is not UTF-8")]
    NotUtf8,
    #[error("decrypted message is addressed to another AppID")]
    AppIdMismatch,
}

/// `signature` of §1: SHA-1 hex of token, timestamp and nonce sorted by
/// bytes and concatenated.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1_hex(&mut [token, timestamp, nonce])
}

/// `msg_signature` of §3.5: like [`signature`] with the `Encrypt` text
/// (as it appears in the XML, after unescaping) as a fourth string.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1_hex(&mut [token, timestamp, nonce, encrypt])
}

fn sorted_sha1_hex(parts: &mut [&str]) -> String {
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for p in parts.iter() {
        hasher.update(p.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Compares a computed signature with the one received, in time that
/// depends only on the lengths (which are public: 40 hex digits).
pub fn verify(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The safe-mode message cipher of one account: its AES key and AppID.
#[derive(Clone)]
pub struct Cipher {
    key: [u8; 32],
    app_id: String,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("key", &"<set>")
            .field("app_id", &self.app_id)
            .finish()
    }
}

impl Cipher {
    /// The cipher for `encoding_aes_key` (43 characters, decoded leniently
    /// with a `=` appended) and the account's `app_id`.
    pub fn new(encoding_aes_key: &str, app_id: &str) -> Result<Cipher, CryptoError> {
        if encoding_aes_key.len() != KEY_CHARS {
            return Err(CryptoError::BadKey);
        }
        let bytes = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Cipher {
            key,
            app_id: app_id.to_owned(),
        })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Decrypts the Base64 `Encrypt` text of a push into the message XML.
    /// Verify `msg_signature` before calling this.
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        let ciphertext = STANDARD
            .decode(encrypt_b64.trim())
            .map_err(|_| CryptoError::BadBase64)?;
        if ciphertext.is_empty() || ciphertext.len() % PAD_BLOCK != 0 {
            return Err(CryptoError::BadCiphertextLength);
        }
        let plain = cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .decrypt_padded_vec::<NoPadding>(&ciphertext)
            .map_err(|_| CryptoError::BadCiphertextLength)?;
        let body = unpad(&plain)?;
        if body.len() < HEADER {
            return Err(CryptoError::TooShort);
        }
        let msg_len = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
        let msg_end = HEADER.checked_add(msg_len).filter(|&end| end <= body.len());
        let msg_end = msg_end.ok_or(CryptoError::BadLength)?;
        let msg = std::str::from_utf8(&body[HEADER..msg_end]).map_err(|_| CryptoError::NotUtf8)?;
        if &body[msg_end..] != self.app_id.as_bytes() {
            return Err(CryptoError::AppIdMismatch);
        }
        Ok(msg.to_owned())
    }

    /// Encrypts a reply XML with 16 fresh random bytes from the OS; the
    /// result is the Base64 text for `<Encrypt>`.
    pub fn encrypt(&self, xml: &str) -> String {
        let mut random = [0u8; 16];
        if getrandom::fill(&mut random).is_err() {
            // The prefix only randomises the first block under the fixed
            // IV; the receiver ignores it. A non-OS source still does that.
            fastrand::fill(&mut random);
        }
        self.encrypt_with(xml, random)
    }

    /// [`Cipher::encrypt`] with given random bytes: deterministic, for tests.
    pub fn encrypt_with(&self, xml: &str, random: [u8; 16]) -> String {
        let msg = xml.as_bytes();
        let mut plain = Vec::with_capacity(HEADER + msg.len() + self.app_id.len() + PAD_BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        plain.extend_from_slice(msg);
        plain.extend_from_slice(self.app_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.resize(plain.len() + pad, pad as u8);
        let ciphertext =
            cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into()).encrypt_padded_vec::<NoPadding>(&plain);
        STANDARD.encode(ciphertext)
    }
}

/// Strips PKCS#7 padding to 32 bytes, checking every pad byte.
fn unpad(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let &pad = plain.last().ok_or(CryptoError::BadPadding)?;
    let n = usize::from(pad);
    if !(1..=PAD_BLOCK).contains(&n) || n > plain.len() {
        return Err(CryptoError::BadPadding);
    }
    let (body, tail) = plain.split_at(plain.len() - n);
    if tail.iter().any(|&b| b != pad) {
        return Err(CryptoError::BadPadding);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    // §3.8 of the protocol reference (official sample code).
    const TOKEN: &str = "spamtest";
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APP_ID: &str = "wx2c2769f8efd9abc2";
    const TIMESTAMP: &str = "1409735669";
    const NONCE: &str = "1320562132";
    const ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
    const PLAIN: &str = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n\
<CreateTime>1409735668</CreateTime>\n\
<MsgType><![CDATA[text]]></MsgType>\n\
<Content><![CDATA[abcdteT]]></Content>\n\
<MsgId>6054768590064713728</MsgId>\n\
</xml>";

    fn cipher() -> Cipher {
        Cipher::new(KEY, APP_ID).unwrap()
    }

    #[test]
    fn url_verification_signature_matches_the_documented_example() {
        let s = signature("AAAAA", "1714036504", "1514711492");
        assert_eq!(s, "f464b24fc39322e44b38aa78f5edd27bd1441696");
        assert!(verify(&s, "f464b24fc39322e44b38aa78f5edd27bd1441696"));
        // Argument order does not matter: the strings are sorted.
        assert_eq!(signature("1514711492", "AAAAA", "1714036504"), s);
    }

    #[test]
    fn worked_example_signatures_match() {
        assert_eq!(
            msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT),
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        );
        assert_eq!(
            signature(TOKEN, TIMESTAMP, NONCE),
            "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
        );
    }

    #[test]
    fn sample_key_with_nonzero_trailing_bits_gives_the_documented_key() {
        // The 43rd character 'G' = 0b000110: its last two bits are not zero.
        assert!(STANDARD.decode(format!("{KEY}=")).is_err(), "strict decoder refuses it");
        let c = cipher();
        assert_eq!(
            hex(&c.key),
            "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
        );
        assert_eq!(hex(&c.iv()), "69b71d79f8218a39259a7a29aabb2dba");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(Cipher::new(&KEY[..42], APP_ID).unwrap_err(), CryptoError::BadKey);
        assert_eq!(
            Cipher::new(&format!("{KEY}A"), APP_ID).unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            Cipher::new(&format!("{}!", &KEY[..42]), APP_ID).unwrap_err(),
            CryptoError::BadKey
        );
    }

    #[test]
    fn worked_example_decrypts_and_reencrypts_byte_for_byte() {
        let c = cipher();
        let plain = c.decrypt(ENCRYPT).unwrap();
        assert_eq!(plain, PLAIN);
        assert_eq!(plain.len(), 280);
        // The sample's random prefix is 16 ASCII characters.
        assert_eq!(c.encrypt_with(PLAIN, *b"89465c840c5f116f"), ENCRYPT);
    }

    #[test]
    fn round_trip_counts_msg_len_in_utf8_bytes() {
        let c = cipher();
        for text in ["报名参加首钢科幻论坛 🚀👩‍🚀", "", "x", &"中".repeat(300)] {
            let enc = c.encrypt(text);
            assert_eq!(c.decrypt(&enc).unwrap(), text);
            let raw = STANDARD.decode(&enc).unwrap();
            assert_eq!(raw.len() % 32, 0);
        }
        // Two encryptions of the same text differ (fresh random prefix).
        assert_ne!(c.encrypt("same"), c.encrypt("same"));
    }

    #[test]
    fn aligned_plaintext_gets_a_full_padding_block() {
        let c = cipher();
        // 20 header + msg + 18 AppID = 64 → aligned.
        let msg = "a".repeat(64 - HEADER - APP_ID.len());
        let raw = STANDARD.decode(c.encrypt_with(&msg, [7; 16])).unwrap();
        assert_eq!(raw.len(), 96);
        assert_eq!(c.decrypt(&STANDARD.encode(&raw)).unwrap(), msg);
    }

    #[test]
    fn a_forged_app_id_is_refused() {
        let forged = Cipher::new(KEY, "wx0000000000000000").unwrap();
        let enc = forged.encrypt("<xml/>");
        assert_eq!(cipher().decrypt(&enc).unwrap_err(), CryptoError::AppIdMismatch);
        assert_eq!(cipher().decrypt(ENCRYPT).unwrap(), PLAIN);
        let longer = Cipher::new(KEY, &format!("{APP_ID}x")).unwrap();
        assert_eq!(longer.decrypt(ENCRYPT).unwrap_err(), CryptoError::AppIdMismatch);
    }

    /// Encrypts raw plaintext blocks without any padding of ours.
    fn seal_raw(c: &Cipher, plain: &[u8]) -> String {
        let ct = cbc::Encryptor::<Aes256>::new(&c.key.into(), &c.iv().into()).encrypt_padded_vec::<NoPadding>(plain);
        STANDARD.encode(ct)
    }

    #[test]
    fn bad_padding_is_refused() {
        let c = cipher();
        let mut block = vec![b'a'; 64];
        block[63] = 0;
        assert_eq!(c.decrypt(&seal_raw(&c, &block)).unwrap_err(), CryptoError::BadPadding);
        block[63] = 33;
        assert_eq!(c.decrypt(&seal_raw(&c, &block)).unwrap_err(), CryptoError::BadPadding);
        block[62] = 3;
        block[63] = 3; // block[61] is 'a', not 3
        assert_eq!(c.decrypt(&seal_raw(&c, &block)).unwrap_err(), CryptoError::BadPadding);
        // A pad of 17..=32 is valid (a 16-byte PKCS#7 unpadder would refuse it).
        let mut ok = vec![0u8; 64];
        ok[19] = 2; // msg_len 2
        ok[20..22].copy_from_slice(b"hi");
        ok[22..40].copy_from_slice(APP_ID.as_bytes());
        ok[40..].fill(24);
        assert_eq!(c.decrypt(&seal_raw(&c, &ok)).unwrap(), "hi");
    }

    #[test]
    fn malformed_ciphertexts_are_errors() {
        let c = cipher();
        assert_eq!(c.decrypt("not base64!").unwrap_err(), CryptoError::BadBase64);
        assert_eq!(c.decrypt("").unwrap_err(), CryptoError::BadCiphertextLength);
        assert_eq!(
            c.decrypt(&STANDARD.encode([0u8; 16])).unwrap_err(),
            CryptoError::BadCiphertextLength
        );
        let mut short = vec![0u8; 32];
        short[18..].fill(14); // 18 bytes left: less than the header
        assert_eq!(c.decrypt(&seal_raw(&c, &short)).unwrap_err(), CryptoError::TooShort);
        let mut long = vec![0u8; 32];
        long[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        long[31] = 1;
        assert_eq!(c.decrypt(&seal_raw(&c, &long)).unwrap_err(), CryptoError::BadLength);
        let mut bad_utf8 = vec![0u8; 64];
        bad_utf8[19] = 2;
        bad_utf8[20..22].copy_from_slice(&[0xff, 0xfe]);
        bad_utf8[22..40].copy_from_slice(APP_ID.as_bytes());
        bad_utf8[40..].fill(24);
        assert_eq!(c.decrypt(&seal_raw(&c, &bad_utf8)).unwrap_err(), CryptoError::NotUtf8);
    }

    #[test]
    fn verify_refuses_any_single_character_change() {
        let good = msg_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT);
        assert!(verify(&good, &good.clone()));
        for i in 0..good.len() {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            assert!(!verify(&good, std::str::from_utf8(&bytes).unwrap()), "changed at {i}");
        }
        assert!(!verify(&good, &good[..39]));
        assert!(!verify(&good, &format!("{good}0")));
        assert!(!verify(&good, ""));
        assert!(!verify(&good, &good.to_uppercase()));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let shown = format!("{:?}", cipher());
        assert!(shown.contains("<set>") && !shown.contains("69b7"));
    }
}
