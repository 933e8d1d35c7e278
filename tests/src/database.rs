//! Fresh databases for tests, the crates.io way: migrate a template once, then
//! `CREATE DATABASE … TEMPLATE` per test (a file copy, far faster than migrating), and
//! `DROP DATABASE … WITH (FORCE)` when the test's guard drops.

use anyhow::Context;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// Where tests may create and drop databases.
pub fn admin_url() -> String {
    std::env::var("LEDGER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `host:port` of the server the tests' databases live on.
pub fn server_address() -> anyhow::Result<String> {
    let url = url::Url::parse(&admin_url())?;
    let host = url.host_str().context("LEDGER_TEST_DATABASE_URL has no host")?;
    Ok(format!("{host}:{}", url.port().unwrap_or(5432)))
}

/// `url` with the server at `address` (`host:port`) instead: a [`crate::TcpCut`] between.
pub fn url_via(url: &str, address: &str) -> anyhow::Result<String> {
    let (host, port) = address.rsplit_once(':').context("an address without a port")?;
    let mut url = url::Url::parse(url)?;
    url.set_host(Some(host))?;
    url.set_port(Some(port.parse()?)).map_err(|()| anyhow::anyhow!("cannot set a port"))?;
    Ok(url.to_string())
}

/// Serialises template creation across test processes.
const TEMPLATE_LOCK: i64 = 0x6c65_6467_6572_0002;

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A fresh ledger database: migrated, empty.
    pub async fn create() -> anyhow::Result<Self> {
        let client = connect(&admin_url()).await?;
        let template = ensure_template(&client, &admin_url()).await?;
        Self::create_from(&client, &template).await
    }

    /// A fresh database with nothing in it, on the same server: another application's.
    pub async fn create_unrelated() -> anyhow::Result<Self> {
        Self::create_from(&connect(&admin_url()).await?, "template1").await
    }

    async fn create_from(client: &tokio_postgres::Client, template: &str) -> anyhow::Result<Self> {
        let name = format!("ledger_test_{}", Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .with_context(|| format!("creating {name} from {template}"))?;
        Ok(Self { url: url_with_database(&admin_url(), &name)?, name })
    }

    /// A plain connection for assertions and for poking at the database directly.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// A pool like the ledger's, for calling library code (rebuilds, store reads) directly.
    pub fn pool(&self) -> anyhow::Result<deadpool_postgres::Pool> {
        Ok(eventstore::connect(&eventstore::PoolSettings {
            database_url: self.url.clone(),
            max_size: 4,
            wait_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(30),
        })?)
    }

    /// Waits until some session of this database waits on a lock (a test holds one to
    /// freeze a writer mid-way).
    pub async fn until_a_session_waits_on_a_lock(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        crate::poll_until(
            std::time::Duration::from_secs(5),
            "a session to wait on a lock",
            || async {
                let waiting: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await?
                    .get(0);
                Ok((waiting > 0).then_some(()))
            },
        )
        .await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime we could block on; a short-lived thread with its
        // own runtime does the async work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let client = connect(&admin_url()).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}; scripts/test drops leftovers", self.name);
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("test database connection ended: {error}");
        }
    });
    Ok(client)
}

async fn ensure_template(client: &tokio_postgres::Client, admin: &str) -> anyhow::Result<String> {
    let template = format!("ledger_tmpl_{}", migrations::fingerprint());
    let exists = |name: String| async move {
        anyhow::Ok(
            client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await?
                .is_some(),
        )
    };
    if exists(template.clone()).await? {
        return Ok(template);
    }
    client.execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK]).await?;
    let built = async {
        if exists(template.clone()).await? {
            return Ok(());
        }
        // Build under another name and rename at the end, so a half-built template is
        // never used by another process.
        let building = format!("{template}_building");
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await?;
        client.batch_execute(&format!("CREATE DATABASE {building}")).await?;
        let mut settings = eventstore::PoolSettings::new(url_with_database(admin, &building)?);
        settings.max_size = 1;
        let pool = eventstore::connect(&settings)?;
        migrations::migrate(&pool).await?;
        pool.close();
        drop(pool);
        // The pool's connections close asynchronously; renaming needs them gone.
        let rename = format!("ALTER DATABASE {building} RENAME TO {template}");
        crate::poll_until(
            std::time::Duration::from_secs(10),
            "the template to be free",
            || async { Ok(client.batch_execute(&rename).await.ok()) },
        )
        .await?;
        anyhow::Ok(())
    }
    .await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK]).await?;
    built.context("building the template database")?;
    Ok(template)
}

/// The same server URL with another database name.
fn url_with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut result = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    Ok(result)
}
