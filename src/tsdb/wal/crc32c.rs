//! CRC-32C (Castagnoli), table-driven, as the WAL's record checksum.
//!
//! A hand-written table keeps a dependency out for 30 lines; this file knows
//! nothing of records.

const POLY: u32 = 0x82f6_3b78;

const TABLE: [[u32; 256]; 4] = make_table();

const fn make_table() -> [[u32; 256]; 4] {
    let mut t = [[0u32; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut k = 1;
        while k < 4 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            k += 1;
        }
        i += 1;
    }
    t
}

/// Continues the checksum `crc` (0 to start) over `data`.
pub fn update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = data.chunks_exact(4);
    for w in &mut chunks {
        c ^= u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        c = TABLE[3][(c & 0xff) as usize]
            ^ TABLE[2][((c >> 8) & 0xff) as usize]
            ^ TABLE[1][((c >> 16) & 0xff) as usize]
            ^ TABLE[0][(c >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ TABLE[0][((c ^ b as u32) & 0xff) as usize];
    }
    !c
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        // RFC 3720 B.4 and the common check value.
        assert_eq!(super::update(0, b"123456789"), 0xe306_9283);
        assert_eq!(super::update(0, &[0u8; 32]), 0x8a91_36aa);
        assert_eq!(super::update(0, &[0xffu8; 32]), 0x62a8_ab43);
        let split = super::update(super::update(0, b"12345"), b"6789");
        assert_eq!(split, 0xe306_9283);
    }
}
