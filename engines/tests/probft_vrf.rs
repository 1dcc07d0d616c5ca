//! RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI: the RFC's own test vectors (Appendix B.3, examples
//! 16–18, which reuse the RFC 8032 §7.1 keys), and rejection of forged proofs, wrong keys and
//! wrong inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dwcp_engines::probft::vrf::{verify, VrfError, VrfPublic, VrfSecret};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().expect("length")
}

/// (SK, PK, alpha, pi, beta) from RFC 9381 Appendix B.3.
const VECTORS: [(&str, &str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
        "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed5933bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
        "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf8096bb474e53895c362d8628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e",
        "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c452118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f",
    ),
];

#[test]
fn rfc9381_vectors_prove_and_verify() {
    for (i, (sk, pk, alpha, pi, beta)) in VECTORS.iter().enumerate() {
        let secret = VrfSecret::from_seed(arr(sk)).expect("key");
        assert_eq!(secret.public(), arr::<32>(pk), "vector {i}: public key");
        let (got_pi, got_beta) = secret.prove(&hex(alpha)).expect("prove");
        assert_eq!(got_pi, arr::<80>(pi), "vector {i}: pi");
        assert_eq!(got_beta, arr::<64>(beta), "vector {i}: beta");
        let verified = verify(&arr(pk), &hex(alpha), &arr(pi)).expect("the RFC's proof verifies");
        assert_eq!(verified, arr::<64>(beta), "vector {i}: beta from verify");
    }
}

#[test]
fn forged_proofs_are_rejected() {
    let (_, pk, alpha, pi, _) = VECTORS[1];
    let (pk, alpha, pi): ([u8; 32], Vec<u8>, [u8; 80]) = (arr(pk), hex(alpha), arr(pi));
    // Every single-bit flip of the proof (Gamma, c or s) must fail.
    for byte in 0..80 {
        for bit in [0u8, 3, 7] {
            let mut forged = pi;
            forged[byte] ^= 1 << bit;
            let r = verify(&pk, &alpha, &forged);
            assert!(r.is_err(), "flip of byte {byte} bit {bit} verified");
        }
    }
    // A proof made by another key for the same input, presented under this key.
    let other = VrfSecret::from_seed([7u8; 32]).expect("key");
    let (other_pi, _) = other.prove(&alpha).expect("prove");
    assert_eq!(verify(&pk, &alpha, &other_pi), Err(VrfError::Invalid));
    // All zeros and all ones.
    assert!(verify(&pk, &alpha, &[0u8; 80]).is_err());
    assert!(verify(&pk, &alpha, &[0xffu8; 80]).is_err());
}

#[test]
fn non_canonical_s_is_rejected() {
    // (Gamma, c, s + q) is the same proof with s not reduced: RFC 9381 §5.4.4 says INVALID.
    let (_, pk, alpha, pi, _) = VECTORS[0];
    let (pk, alpha, pi): ([u8; 32], Vec<u8>, [u8; 80]) = (arr(pk), hex(alpha), arr(pi));
    const Q: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut forged = pi;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(forged[48 + i]) + u16::from(Q[i]) + carry;
        forged[48 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "s + q fits in 256 bits for this vector");
    assert_ne!(forged, pi);
    assert_eq!(verify(&pk, &alpha, &forged), Err(VrfError::BadEncoding));
    assert!(verify(&pk, &alpha, &pi).is_ok());
}

#[test]
fn wrong_keys_and_wrong_inputs_are_rejected() {
    let secret = VrfSecret::from_seed([42u8; 32]).expect("key");
    let alpha = b"probft view 3 prepare";
    let (pi, beta) = secret.prove(alpha).expect("prove");
    let public = VrfPublic::from_bytes(&secret.public()).expect("valid key");
    assert_eq!(public.verify(alpha, &pi), Ok(beta));
    // Wrong input: another view, another phase, a truncated input.
    for wrong in [
        &b"probft view 4 prepare"[..],
        b"probft view 3 commit",
        b"probft view 3",
    ] {
        assert_eq!(
            public.verify(wrong, &pi),
            Err(VrfError::Invalid),
            "{wrong:?}"
        );
    }
    // Wrong key: every other member's key.
    for seed in 0u8..8 {
        let other = VrfSecret::from_seed([seed; 32]).expect("key");
        assert_eq!(verify(&other.public(), alpha, &pi), Err(VrfError::Invalid));
    }
    // Keys that are not valid points of large order are refused outright.
    let identity = {
        let mut b = [0u8; 32];
        b[0] = 1; // the neutral element (0, 1): small order
        b
    };
    assert_eq!(
        VrfPublic::from_bytes(&identity).err(),
        Some(VrfError::BadPublicKey)
    );
    // Outputs differ across inputs and keys (the sampling relies on it).
    let (_, beta2) = secret.prove(b"probft view 3 commit").expect("prove");
    assert_ne!(beta, beta2);
}
