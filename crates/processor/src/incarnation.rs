//! Which topic the watermarks belong to.
//!
//! Watermarks are offsets, and offsets mean something only within one incarnation of a topic.
//! When the topic is deleted and created again, or the system fails over to a cluster whose
//! offsets restart, new events fall at or below the old watermark and would be skipped in
//! silence. So the processor records the incarnation it applied (the cluster id and Kafka's
//! topic id) beside the watermarks, and compares it with the live one at start and every
//! [`RECHECK`]. On a difference it refuses to apply anything, says so on /readyz, in the log and
//! in `processor_topic_incarnation_mismatch`, and waits for the operator's choice (README:
//! "When the topic changes under the processor").

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel::PgConnection;
use rdkafka::client::Client;
use rdkafka::ClientContext;

/// How often a running processor looks at the live incarnation again.
pub const RECHECK: Duration = Duration::from_secs(30);

const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What identifies one incarnation of a topic. A part the broker does not give is None and is
/// not compared.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Incarnation {
    #[diesel(sql_type = Nullable<Text>)]
    pub cluster_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub topic_id: Option<String>,
}

impl Incarnation {
    /// True when a part both sides know differs.
    pub fn differs_from(&self, other: &Incarnation) -> bool {
        let differ = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
        differ(&self.cluster_id, &other.cluster_id) || differ(&self.topic_id, &other.topic_id)
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |p: &Option<String>| p.clone().unwrap_or_else(|| "unknown".into());
        write!(f, "cluster {} topic id {}", part(&self.cluster_id), part(&self.topic_id))
    }
}

/// The live incarnation, from the broker. Blocking: call from a blocking thread.
pub fn live<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<Incarnation, String> {
    let cluster_id = client.fetch_cluster_id(ADMIN_TIMEOUT).filter(|id| !id.is_empty());
    let topic_id = kafka_topic_id::describe(client, topic, ADMIN_TIMEOUT)?;
    Ok(Incarnation { cluster_id, topic_id })
}

/// The incarnation the stored watermarks belong to, if one was recorded.
pub fn stored(conn: &mut PgConnection, topic: &str) -> QueryResult<Option<Incarnation>> {
    diesel::sql_query("SELECT cluster_id, topic_id FROM topic_incarnations WHERE topic = $1")
        .bind::<Text, _>(topic)
        .get_result(conn)
        .optional()
}

/// Records `live` as the incarnation of `topic`'s watermarks. With `reset`, the topic's
/// watermarks go too (the operator adopts a new incarnation: its events apply from its start).
pub fn adopt(conn: &mut PgConnection, topic: &str, live: &Incarnation, reset: bool) -> QueryResult<()> {
    conn.transaction(|conn| {
        if reset {
            diesel::sql_query("DELETE FROM partition_watermarks WHERE topic = $1")
                .bind::<Text, _>(topic)
                .execute(conn)?;
        }
        // `recorded_at` marks where offsets start again, so it moves only on a reset: erasure
        // receipts' offsets count from it (crate::erasure), and filling in a part the broker did
        // not give before changes nothing about the offsets.
        diesel::sql_query(
            "INSERT INTO topic_incarnations (topic, cluster_id, topic_id) VALUES ($1, $2, $3) \
             ON CONFLICT (topic) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, topic_id = EXCLUDED.topic_id, \
             recorded_at = CASE WHEN $4 THEN now() ELSE topic_incarnations.recorded_at END",
        )
        .bind::<Text, _>(topic)
        .bind::<Nullable<Text>, _>(&live.cluster_id)
        .bind::<Nullable<Text>, _>(&live.topic_id)
        .bind::<diesel::sql_types::Bool, _>(reset)
        .execute(conn)?;
        Ok(())
    })
}

/// What the comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The watermarks belong to the live topic (recorded now when nothing was).
    Same,
    /// They belong to another incarnation: applying would skip new events.
    Changed { stored: Incarnation, live: Incarnation },
}

/// Compares the stored incarnation with the live one, recording the live one when none was.
pub fn check(conn: &mut PgConnection, topic: &str, live: &Incarnation) -> QueryResult<Verdict> {
    match stored(conn, topic)? {
        Some(stored) if stored.differs_from(live) => Ok(Verdict::Changed { stored, live: live.clone() }),
        // Fill in a part the broker did not give before (an upgrade to a broker with topic ids).
        Some(stored)
            if stored.cluster_id.is_none() && live.cluster_id.is_some()
                || stored.topic_id.is_none() && live.topic_id.is_some() =>
        {
            adopt(conn, topic, live, false)?;
            Ok(Verdict::Same)
        }
        Some(_) => Ok(Verdict::Same),
        None => {
            adopt(conn, topic, live, false)?;
            Ok(Verdict::Same)
        }
    }
}

/// The operator's message for a changed topic.
pub fn mismatch_message(topic: &str, stored: &Incarnation, live: &Incarnation) -> String {
    format!(
        "topic {topic} is not the one the stored watermarks belong to (stored: {stored}; live: {live}); \
         nothing is applied until an operator chooses: `processor adopt-topic` applies the new topic \
         from its start (sync ids already processed stay deduplicated), or restore the old topic"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(cluster: Option<&str>, topic: Option<&str>) -> Incarnation {
        Incarnation { cluster_id: cluster.map(Into::into), topic_id: topic.map(Into::into) }
    }

    #[test]
    fn only_parts_both_sides_know_are_compared() {
        assert!(!inc(Some("c"), Some("t")).differs_from(&inc(Some("c"), Some("t"))));
        assert!(inc(Some("c"), Some("t")).differs_from(&inc(Some("c"), Some("u"))));
        assert!(inc(Some("c"), Some("t")).differs_from(&inc(Some("d"), Some("t"))));
        assert!(!inc(None, Some("t")).differs_from(&inc(Some("d"), Some("t"))));
        assert!(!inc(Some("c"), None).differs_from(&inc(Some("c"), Some("u"))));
    }
}
