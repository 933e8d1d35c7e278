//! Read models built from the order events: payments and notifications.
//!
//! Not built yet. The plan (DESIGN.md): Kafka consumers, one consumer group per
//! projection, applying each event exactly once by deduplicating on stream id and version
//! in the same transaction as the read-model write, committing offsets after the database
//! commit; poison messages retried with backoff, then parked in a dead-letter topic and
//! table; rebuilds replay the event store into a new generation and swap atomically.
