//! Partitions on a bus that has none of its own (NATS subjects, RabbitMQ queues): the
//! publisher puts each message on the partition of its key, and each partition is
//! consumed by one member of a group at a time, so order per key holds while the members
//! share the work.
//!
//! Kafka partitions by its own client's hash; these functions serve the other buses.

use std::collections::BTreeSet;

/// The partition of `key` among `partitions`: FNV-1a (64-bit) of the key's UTF-8 bytes,
/// modulo the count. Stable across processes, versions and languages, and published in
/// the AsyncAPI document so an outside publisher can place messages the same way.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key.bytes().fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    // The remainder is below `partitions`, a u32.
    u32::try_from(hash % u64::from(partitions.max(1))).unwrap_or(0)
}

/// How many partitions one of `members` members should hold: the larger share, so that
/// every partition has a holder (8 among 3: 3, 3 and 2).
pub fn fair_share(partitions: u32, members: usize) -> usize {
    let members = members.max(1);
    (partitions as usize).div_ceil(members)
}

/// What a member holding `held` should do next, given `members` live members: release the
/// partitions beyond its share (the highest numbers, so members converge on the same
/// split), or claim up to `claim` more.
#[derive(Debug, PartialEq, Eq)]
pub struct Rebalance {
    pub release: Vec<u32>,
    pub claim: usize,
}

pub fn rebalance(partitions: u32, members: usize, held: &BTreeSet<u32>) -> Rebalance {
    let share = fair_share(partitions, members);
    if held.len() > share {
        Rebalance {
            release: held.iter().rev().take(held.len() - share).copied().collect(),
            claim: 0,
        }
    } else {
        Rebalance { release: Vec::new(), claim: share - held.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_lands_on_the_same_partition_within_range() {
        let key = "0190f3a4-6c1e-7a52-9d41-3f1b2c9e8a77";
        assert_eq!(partition_of(key, 8), partition_of(key, 8));
        for partitions in 1..=16 {
            assert!(partition_of(key, partitions) < partitions);
        }
        assert_eq!(partition_of(key, 0), 0, "no partitions count as one");
    }

    #[test]
    fn keys_spread_over_every_partition() {
        let mut seen = BTreeSet::new();
        for n in 0..1_000 {
            seen.insert(partition_of(&uuid::Uuid::from_u128(n * 7_919).to_string(), 8));
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn fnv1a_matches_its_published_vectors() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the reference test suite).
        assert_eq!(
            partition_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8c_u64 % u64::from(u32::MAX)) as u32
        );
    }

    #[test]
    fn shares_cover_every_partition() {
        for members in 1..=10 {
            assert!(fair_share(8, members) * members >= 8);
        }
        assert_eq!(fair_share(8, 3), 3);
        assert_eq!(fair_share(8, 0), 8);
    }

    #[test]
    fn a_member_over_its_share_releases_its_highest_partitions() {
        let held: BTreeSet<u32> = (0..8).collect();
        assert_eq!(rebalance(8, 2, &held), Rebalance { release: vec![7, 6, 5, 4], claim: 0 });
        let held: BTreeSet<u32> = [1, 5].into();
        assert_eq!(rebalance(8, 2, &held), Rebalance { release: vec![], claim: 2 });
    }
}
