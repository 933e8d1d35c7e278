//! A real SMTP server for tests of mail delivery: `tests/smtp_sink.py` (aiosmtpd, the
//! Debian package `python3-aiosmtpd`) as a child process on a free port, recording what it
//! accepts in a directory of the test's own. The test can make it refuse mail
//! ([`TestSmtp::answer_with`]) or stop it and start it again (an outage).

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

pub use crate::mail::ReceivedMail;
use crate::poll_until;

const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_sink.py");

/// Python starts in well under a second; the margin is for a loaded CI machine.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// An SMTP server owned by one test, at [`TestSmtp::url`].
pub struct TestSmtp {
    pub port: u16,
    python: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TestSmtp {
    pub async fn start() -> anyhow::Result<Self> {
        let python = python_with_aiosmtpd().await?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::Builder::new()
            .prefix("smtp-sink-")
            .tempdir()
            .context("creating the SMTP sink's directory")?;
        let mut smtp = Self { port, python, dir, child: None };
        smtp.start_again().await?;
        Ok(smtp)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Where the sink keeps `messages.jsonl`, `answer` and its `stderr.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every message accepted so far (across restarts), in the order received.
    pub fn messages(&self) -> anyhow::Result<Vec<ReceivedMail>> {
        let path = self.dir.path().join("messages.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        // A line the sink is still writing has no newline yet: it is read next time.
        let complete = text.rsplit_once('\n').map_or("", |(complete, _)| complete);
        complete
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .with_context(|| format!("reading {}: {line}", path.display()))
            })
            .collect()
    }

    /// Waits until at least `count` messages were accepted, and returns them all.
    pub async fn wait_for(
        &self,
        count: usize,
        deadline: Duration,
    ) -> anyhow::Result<Vec<ReceivedMail>> {
        poll_until(deadline, &format!("{count} messages at the SMTP sink"), || {
            let messages = self.messages();
            async move {
                let messages = messages?;
                Ok((messages.len() >= count).then_some(messages))
            }
        })
        .await
    }

    /// From now on, answers every message's DATA with `reply` (such as
    /// `451 4.3.0 try again later` or `550 5.1.1 no such user`) and does not record it;
    /// `None` goes back to accepting.
    pub fn answer_with(&self, reply: Option<&str>) -> anyhow::Result<()> {
        let path = self.dir.path().join("answer");
        let done = match reply {
            Some(reply) => {
                // Renamed into place so that the sink never reads half a reply.
                let draft = self.dir.path().join("answer.draft");
                std::fs::write(&draft, reply).and_then(|()| std::fs::rename(&draft, &path))
            }
            None => match std::fs::remove_file(&path) {
                Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
                removed => removed,
            },
        };
        done.with_context(|| format!("setting the SMTP sink's answer to {reply:?}"))
    }

    /// Kills the server (like a crash: no goodbye to clients); the messages stay.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("stopping the SMTP sink")?;
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): connections stay open and every send hangs, as with a
    /// server that stopped answering. [`thaw`](Self::thaw) lets it go on.
    pub async fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP").await
    }

    pub async fn thaw(&self) -> anyhow::Result<()> {
        self.signal("-CONT").await
    }

    async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid =
            self.child.as_ref().and_then(Child::id).context("the SMTP sink is not running")?;
        let status = tokio::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }

    /// Starts the server again on the same port, with the same messages and answer.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            // Two sinks cannot share the port: calling this twice is a mistake in the test.
            anyhow::ensure!(child.try_wait()?.is_some(), "the SMTP sink is already running");
        }
        let log = self.dir.path().join("stderr.log");
        let child = self.child.insert(self.spawn(&log)?);
        let address = format!("127.0.0.1:{}", self.port);
        poll_until(READY_WITHIN, "the SMTP sink to listen", || {
            // Checked here rather than only by the deadline, to say at once why it failed.
            let exited = child.try_wait();
            let (address, log) = (address.clone(), log.clone());
            async move {
                if let Some(status) = exited.context("watching the SMTP sink")? {
                    let said = std::fs::read_to_string(&log).unwrap_or_default();
                    anyhow::bail!("{SINK} exited with {status} before listening: {}", said.trim());
                }
                Ok(tokio::net::TcpStream::connect(&address).await.ok().map(|_| ()))
            }
        })
        .await
    }

    fn spawn(&self, log: &Path) -> anyhow::Result<Child> {
        // A file rather than a pipe: nobody reads a pipe while the test runs, and a full
        // one would block the sink.
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        Command::new(&self.python)
            .arg(SINK)
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {SINK}", self.python.display()))
    }
}

/// The interpreter to run the sink with, found once per test process.
async fn python_with_aiosmtpd() -> anyhow::Result<PathBuf> {
    static FOUND: OnceCell<PathBuf> = OnceCell::const_new();
    FOUND.get_or_try_init(find_python).await.cloned()
}

/// `SMTP_SINK_PYTHON`, else the first of `python3` and `/usr/bin/python3` that can import
/// aiosmtpd: a pyenv or virtualenv `python3` ahead on the PATH does not see the Debian
/// package, which is installed for `/usr/bin/python3` only.
async fn find_python() -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("SMTP_SINK_PYTHON") {
        Some(python) => vec![python.into()],
        None => vec!["python3".into(), "/usr/bin/python3".into()],
    };
    for python in &candidates {
        let probe = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if probe.is_ok_and(|status| status.success()) {
            return Ok(python.clone());
        }
    }
    anyhow::bail!(
        "no Python 3 with aiosmtpd among {candidates:?}: install the Debian package \
         python3-aiosmtpd (apt-get install python3-aiosmtpd), or set SMTP_SINK_PYTHON to an \
         interpreter that has aiosmtpd"
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    use super::*;

    const MESSAGE: &str = "From: Ledger <ledger@example.com>\r\n\
                           To: Bob <bob@example.com>\r\n\
                           Subject: Order 42\r\n shipped\r\n\
                           Message-ID: <42@ledger.test>\r\n\
                           \r\n\
                           Hello Bob,\r\n\
                           .your order has shipped.\r\n";

    /// Just enough SMTP to hand one message over, as a mailer would.
    struct Client {
        stream: BufReader<TcpStream>,
    }

    impl Client {
        async fn connect(smtp: &TestSmtp) -> anyhow::Result<Self> {
            let stream = TcpStream::connect(("127.0.0.1", smtp.port)).await?;
            let mut client = Self { stream: BufReader::new(stream) };
            client.expect("220").await?;
            client.command("EHLO client.test", "250").await?;
            Ok(client)
        }

        /// Sends one message; returns the reply to its end (or to DATA, if refused there).
        async fn send(&mut self, from: &str, to: &str, message: &str) -> anyhow::Result<String> {
            self.command(&format!("MAIL FROM:<{from}>"), "250").await?;
            self.command(&format!("RCPT TO:<{to}>"), "250").await?;
            let reply = self.command("DATA", "").await?;
            if !reply.starts_with("354") {
                return Ok(reply);
            }
            // Dot-stuffing (RFC 5321 4.5.2), so that a line starting with a dot survives.
            let stuffed: String = message
                .split_inclusive("\r\n")
                .map(|line| if line.starts_with('.') { format!(".{line}") } else { line.into() })
                .collect();
            self.command(&format!("{stuffed}."), "").await
        }

        async fn quit(mut self) -> anyhow::Result<()> {
            self.command("QUIT", "221").await.map(drop)
        }

        async fn command(&mut self, line: &str, expected: &str) -> anyhow::Result<String> {
            self.stream.get_mut().write_all(format!("{line}\r\n").as_bytes()).await?;
            self.expect(expected).await
        }

        /// Reads one (possibly multi-line) reply, which must start with `expected`.
        async fn expect(&mut self, expected: &str) -> anyhow::Result<String> {
            let mut reply = String::new();
            loop {
                let mut line = String::new();
                anyhow::ensure!(self.stream.read_line(&mut line).await? > 0, "connection closed");
                reply.push_str(&line);
                // `250-...` announces another line of the same reply; `250 ...` ends it.
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
            anyhow::ensure!(reply.starts_with(expected), "expected {expected}, got {reply:?}");
            Ok(reply)
        }
    }

    #[tokio::test]
    async fn records_what_it_accepts() -> anyhow::Result<()> {
        let smtp = TestSmtp::start().await?;
        let mut client = Client::connect(&smtp).await?;
        let reply = client.send("ledger@example.com", "bob@example.com", MESSAGE).await?;
        assert!(reply.starts_with("250"), "{reply}");
        client.quit().await?;

        let messages = smtp.messages()?;
        assert_eq!(messages.len(), 1);
        let mail = &messages[0];
        assert_eq!(mail.mail_from, "ledger@example.com");
        assert_eq!(mail.to, ["bob@example.com"]);
        assert_eq!(mail.raw, MESSAGE);
        assert_eq!(mail.subject().as_deref(), Some("Order 42 shipped"));
        assert_eq!(mail.message_id().as_deref(), Some("<42@ledger.test>"));
        assert_eq!(mail.header("to").as_deref(), Some("Bob <bob@example.com>"));
        assert_eq!(mail.body()?, "Hello Bob,\r\n.your order has shipped.\r\n");
        Ok(())
    }

    #[tokio::test]
    async fn refuses_with_the_programmed_answer() -> anyhow::Result<()> {
        let smtp = TestSmtp::start().await?;
        smtp.answer_with(Some("451 4.3.0 try later"))?;
        let mut client = Client::connect(&smtp).await?;
        let reply = client.send("ledger@example.com", "bob@example.com", MESSAGE).await?;
        assert!(reply.starts_with("451 4.3.0 try later"), "{reply}");
        assert!(smtp.messages()?.is_empty());

        smtp.answer_with(None)?;
        let reply = client.send("ledger@example.com", "bob@example.com", MESSAGE).await?;
        assert!(reply.starts_with("250"), "{reply}");
        client.quit().await?;
        assert_eq!(smtp.wait_for(1, Duration::from_secs(5)).await?.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn keeps_its_messages_across_an_outage() -> anyhow::Result<()> {
        let mut smtp = TestSmtp::start().await?;
        let mut client = Client::connect(&smtp).await?;
        client.send("ledger@example.com", "bob@example.com", MESSAGE).await?;
        client.quit().await?;

        smtp.stop().await?;
        assert!(TcpStream::connect(("127.0.0.1", smtp.port)).await.is_err());
        smtp.start_again().await?;
        let mut client = Client::connect(&smtp).await?;
        client.send("ledger@example.com", "carol@example.com", MESSAGE).await?;
        client.quit().await?;

        let to: Vec<_> = smtp.messages()?.into_iter().flat_map(|mail| mail.to).collect();
        assert_eq!(to, ["bob@example.com", "carol@example.com"]);
        Ok(())
    }

    #[test]
    fn decodes_what_mailers_encode() -> anyhow::Result<()> {
        let mail = |raw: &str| ReceivedMail {
            mail_from: String::new(),
            to: Vec::new(),
            raw: raw.to_owned(),
        };
        let quoted = mail(
            "Subject: =?utf-8?B?Q29tbWFuZGU=?= =?utf-8?Q?_exp=C3=A9di=C3=A9e?=\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             Total =E2=82=AC 12, a long line that was=\r\n split.\r\n",
        );
        assert_eq!(quoted.subject().as_deref(), Some("Commande expédiée"));
        assert_eq!(quoted.body()?, "Total € 12, a long line that was split.\r\n");

        let based = mail("content-transfer-encoding: BASE64\r\n\r\nSGVsbG8s\r\nIEJvYg==\r\n");
        assert_eq!(based.body()?, "Hello, Bob");
        Ok(())
    }
}
