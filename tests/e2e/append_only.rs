//! The event store is append-only by the database's own rules.

use ledger_tests::TestApp;

#[tokio::test]
async fn update_delete_and_truncate_of_events_fail_at_the_database() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.place_order("cus_append_only").await?;
    let client = app.database.client().await?;

    for statement in [
        "UPDATE events SET payload = '{}'::jsonb",
        "UPDATE events SET stream_version = stream_version + 100",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = client
            .batch_execute(statement)
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{statement} succeeded"))?;
        let message = error.as_db_error().map(|db| db.message().to_owned()).unwrap_or_default();
        assert!(message.contains("append-only"), "{statement}: {message}");
    }
    assert_eq!(app.event_count().await?, 1, "the event is untouched");
    Ok(())
}
