//! How ids and category values become numbers: a value of at most 15 bytes is its own 128-bit key
//! (found and compared without hashing a string), a longer one a hash of it.

/// A value of at most 15 bytes as one number: its length in the first (most significant) byte,
/// then its bytes, zero-padded. Keys order values by length, then byte by byte.
pub(super) fn short_key(value: &str) -> Option<u128> {
    let bytes = value.as_bytes();
    (bytes.len() < 16).then(|| {
        let mut key = [0u8; 16];
        key[0] = bytes.len() as u8;
        key[1..=bytes.len()].copy_from_slice(bytes);
        u128::from_be_bytes(key)
    })
}

/// A text id as a 128-bit key: itself when it has at most 15 bytes ([`short_key`], which orders
/// ids by length, then byte by byte, so that "ev-9" comes before "ev-10"), else its xxh3-128 hash
/// with the first byte set to 255, which no short key has.
pub(super) fn text_key(id: &str) -> u128 {
    short_key(id).unwrap_or_else(|| xxhash_rust::xxh3::xxh3_128(id.as_bytes()) | 0xFF << 120)
}

/// A multiplicative hash of an id's bits, whose high bits choose its part: consecutive ids
/// spread over all parts.
pub(super) fn mixed(bits: u64) -> u64 {
    bits.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// [`mixed`] for a 128-bit key.
pub(super) fn mixed128(key: u128) -> u64 {
    mixed(key as u64 ^ (key >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keys_keep_the_order_of_counters_formatted_without_padding() {
        let keys: Vec<u128> = (0..2000).map(|i| text_key(&format!("ev1-{i}"))).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(text_key("b") > text_key("a") && text_key("ab") > text_key("b"));
    }

    #[test]
    fn short_text_ids_are_their_own_keys_and_long_ones_never_collide_with_them() {
        assert_eq!(text_key(""), 0);
        assert_ne!(text_key("a"), text_key("a\0"));
        let long = "an-id-of-more-than-fifteen-bytes";
        assert_eq!(text_key(long) >> 120, 0xFF);
        assert!((0..16).map(|n| "x".repeat(n)).all(|id| text_key(&id) >> 120 == id.len() as u128));
    }
}
