//! A real browser for the console's specs: Debian's headless Chromium, driven through its
//! chromedriver over WebDriver, with a fresh profile each time and nothing downloaded.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long a spec waits for the page to show something.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(20);

/// A laptop's window and a phone's.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Chromium at a laptop's size (`CHROMIUM_BIN`, `CHROMEDRIVER_BIN` override the
    /// Debian paths).
    pub async fn start() -> anyhow::Result<Self> {
        let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let chromedriver =
            std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {chromedriver} (scripts/test installs it)"))?;
        let webdriver = format!("http://127.0.0.1:{port}");
        let status = format!("{webdriver}/status");
        crate::poll_until(PAGE_DEADLINE, "chromedriver ready", || async {
            let ready = match reqwest::get(&status).await {
                Ok(response) => {
                    response.json::<serde_json::Value>().await?["value"]["ready"] == true
                }
                Err(_) => false,
            };
            Ok(ready.then_some(()))
        })
        .await?;
        let profile = tempfile::tempdir()?;
        let arguments = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": arguments },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            anyhow::bail!("capabilities are an object");
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .context("opening a Chromium session")?;
        client.set_window_size(DESKTOP.0, DESKTOP.1).await?;
        Ok(Self { client, driver, _profile: profile })
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(url).await?)
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(PAGE_DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for `{css}`"))
    }

    /// Types `keys` into the first element matching `css`, finding it again if the page
    /// redrew it in between.
    pub async fn type_into(&self, css: &str, keys: &str) -> anyhow::Result<()> {
        crate::poll_until(PAGE_DEADLINE, &format!("typing into `{css}`"), || async move {
            let Ok(element) = self.client.find(Locator::Css(css)).await else { return Ok(None) };
            Ok(element.send_keys(keys).await.ok())
        })
        .await
    }

    /// Every element matching `css` now.
    pub async fn all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    /// Waits until the text of the first element matching `css` satisfies `accept`.
    pub async fn wait_for_text(
        &self,
        css: &str,
        what: &str,
        accept: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let accept = &accept;
        crate::poll_until(PAGE_DEADLINE, what, || async move {
            let Ok(element) = self.client.find(Locator::Css(css)).await else { return Ok(None) };
            let text = element.text().await.unwrap_or_default();
            Ok(accept(&text).then_some(text))
        })
        .await
    }

    /// A screenshot of the page at `size`, saved as `target/console/<name>.png`; the window
    /// returns to a laptop's size after.
    pub async fn screenshot(&self, name: &str, size: (u32, u32)) -> anyhow::Result<PathBuf> {
        self.client.set_window_size(size.0, size.1).await?;
        let png = self.client.screenshot().await?;
        self.client.set_window_size(DESKTOP.0, DESKTOP.1).await?;
        let directory = screenshots_dir();
        std::fs::create_dir_all(&directory)?;
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// The serious and critical accessibility violations axe-core finds on the page now
    /// (its WCAG 2.x A and AA rules and best practices), one line each: the rule, its
    /// impact, what it asks and the elements that break it.
    pub async fn accessibility_violations(&self) -> anyhow::Result<Vec<String>> {
        let axe = std::fs::read_to_string(axe_core_js()?).context("reading axe-core")?;
        // Injected as WebDriver runs scripts, not through the page: the console's CSP
        // allows its own scripts only, and rightly.
        self.client.execute(&axe, vec![]).await.context("loading axe-core into the page")?;
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then((results) => done(results.violations
                     .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                     .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes
                       .map((node) => node.target.join(' ')).join(', ')}`)))
                   .catch((error) => done({ error: String(error) }));",
                vec![],
            )
            .await
            .context("running axe-core")?;
        if let Some(error) = found.get("error") {
            anyhow::bail!("axe-core failed: {error}");
        }
        Ok(serde_json::from_value(found)?)
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        self.client.close().await?;
        let _ = self.driver.kill().await;
        Ok(())
    }
}

/// `target/console/`: where the specs leave their screenshots.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("console")
}

/// axe-core's script: `AXE_CORE_JS` (scripts/test fetches it, `ensure_axe`), else what an
/// earlier run of scripts/test left under `target/dev/`.
fn axe_core_js() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("AXE_CORE_JS") {
        return Ok(PathBuf::from(path));
    }
    let state = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dev");
    std::fs::read_dir(&state)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("axe-core-"))
        .map(|entry| entry.path().join("axe.min.js"))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "no axe-core: set AXE_CORE_JS, or run scripts/test once (it fetches it into {})",
                state.display()
            )
        })
}
