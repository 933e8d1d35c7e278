//! A set of event positions (those a rebuild's bulk replay applied), as a bitmap: a bit per position, in
//! chunks of 4096 kept only where positions are, so ten million events take about 1.3 MB
//! however sparse or out of order (the gap-safe order is not position order) they come.
//! The watermark walks it in position order; it needs an event's append time only where
//! the walk can stop, which it looks up then.

use std::collections::BTreeMap;

const CHUNK_BITS: u64 = 4096;
const WORDS: usize = (CHUNK_BITS / 64) as usize;

/// A set of event positions (see the module documentation).
#[derive(Default)]
pub struct Positions {
    chunks: BTreeMap<u64, Box<[u64; WORDS]>>,
    len: u64,
    highest: Option<i64>,
}

impl Positions {
    /// Adds a position (positions are positive; adding one twice counts it once).
    pub fn insert(&mut self, position: i64) {
        let position = position.unsigned_abs();
        let chunk =
            self.chunks.entry(position / CHUNK_BITS).or_insert_with(|| Box::new([0; WORDS]));
        let bit = position % CHUNK_BITS;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if chunk[word] & mask == 0 {
            chunk[word] |= mask;
            self.len += 1;
        }
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        self.highest = Some(self.highest.map_or(position, |highest| highest.max(position)));
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn highest(&self) -> Option<i64> {
        self.highest
    }

    /// The positions above `after`, ascending.
    pub fn above(&self, after: i64) -> impl Iterator<Item = i64> + '_ {
        let after = after.max(0).unsigned_abs();
        self.chunks
            .range(after / CHUNK_BITS..)
            .flat_map(move |(chunk, words)| {
                words.iter().enumerate().flat_map(move |(index, word)| {
                    let base = chunk * CHUNK_BITS + index as u64 * 64;
                    Bits(*word).map(move |bit| base + bit)
                })
            })
            .filter(move |position| *position > after)
            .map(|position| i64::try_from(position).unwrap_or(i64::MAX))
    }
}

/// The set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.0 == 0 {
            return None;
        }
        let bit = u64::from(self.0.trailing_zeros());
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_back_in_order_whatever_order_they_went_in() {
        let mut positions = Positions::default();
        for position in [9_000_000, 5, 4097, 4096, 3, 64, 63, 4095, 5, 12_345_678_901] {
            positions.insert(position);
        }
        let all: Vec<i64> = positions.above(0).collect();
        assert_eq!(all, [3, 5, 63, 64, 4095, 4096, 4097, 9_000_000, 12_345_678_901]);
        assert_eq!(positions.len(), 9, "a position added twice counts once");
        assert_eq!(positions.highest(), Some(12_345_678_901));
    }

    #[test]
    fn above_starts_after_the_given_position() {
        let mut positions = Positions::default();
        (1..=10_000).for_each(|position| positions.insert(position));
        assert_eq!(positions.above(9_997).collect::<Vec<_>>(), [9_998, 9_999, 10_000]);
        assert_eq!(positions.above(4_095).next(), Some(4_096));
        assert_eq!(positions.above(10_000).next(), None);
        assert_eq!(positions.above(-1).count(), 10_000);
    }

    #[test]
    fn a_million_dense_positions_take_a_bit_each() {
        let mut positions = Positions::default();
        (1..=1_000_000).for_each(|position| positions.insert(position));
        assert_eq!(positions.chunks.len(), 245);
        assert_eq!(positions.len(), 1_000_000);
    }
}
