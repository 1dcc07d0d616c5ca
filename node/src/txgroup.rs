//! Client-side batching: a host submits several of its own transactions as one engine input,
//! so the engine's client signs them once (one ed25519 signature per group instead of per
//! transaction, verified once per replica — in one batch verification with the other groups of a
//! pre-prepare) and sends them in one request message. Every transaction is still covered by
//! its origin's signature: the signature is over the whole group's bytes.
//!
//! Layout: `"txg1"`, `u32` count, then per transaction `u64` id, `u32` length, the bytes (all
//! little-endian). A payload that does not parse is not a group.

const MAGIC: &[u8; 4] = b"txg1";

/// Encode `(id, payload)` transactions as one group payload.
pub fn encode(txs: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let size: usize = txs.iter().map(|(_, p)| 12 + p.len()).sum();
    let mut buf = Vec::with_capacity(8 + size);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(txs.len() as u32).to_le_bytes());
    for (id, p) in txs {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(p);
    }
    buf
}

fn take<'a>(b: &mut &'a [u8], k: usize) -> Option<&'a [u8]> {
    if b.len() < k {
        return None;
    }
    let (h, t) = b.split_at(k);
    *b = t;
    Some(h)
}

/// The transactions of a group payload, or `None` if it is not one (or is malformed).
pub fn decode(payload: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut b = payload;
    if take(&mut b, 4)? != MAGIC {
        return None;
    }
    let n = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
    // Each transaction takes at least 12 bytes: a count beyond that is malformed.
    if n > b.len() / 12 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        out.push((id, take(&mut b, len)?));
    }
    b.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let txs = vec![(7, vec![1u8; 512]), (8, vec![]), (9, vec![2, 3])];
        let enc = encode(&txs);
        let dec = decode(&enc).unwrap();
        assert_eq!(dec.len(), 3);
        for ((id, p), (i2, p2)) in txs.iter().zip(&dec) {
            assert_eq!((id, p.as_slice()), (i2, *p2));
        }
        assert!(decode(&enc[..enc.len() - 1]).is_none(), "truncated");
        let mut longer = enc.clone();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing bytes");
        assert!(
            decode(&[0u8; 600]).is_none(),
            "a plain payload is not a group"
        );
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_none(), "count beyond the bytes");
    }
}
