//! TLS to PostgreSQL, configured the way libpq is, because that is what operators know:
//! `sslmode` (disable, prefer, require, verify-ca, verify-full), `sslrootcert` (a PEM file
//! of certificate authorities, or `system`), `sslcert` and `sslkey` (a client certificate).
//!
//! The modes mean what they mean to libpq. `prefer` (the default) encrypts when the server
//! offers TLS and verifies nothing; `require` insists on TLS but accepts any certificate;
//! `verify-ca` checks that a trusted authority signed the server's certificate;
//! `verify-full` also checks that the certificate names the host connected to. As in libpq,
//! a root certificate given with `prefer` or `require` makes them verify the chain too, and
//! `sslrootcert=system` (the system's trusted roots) goes with `verify-full` only, the one
//! mode that makes a public authority's signature mean anything.
//!
//! Everything that can be wrong with these settings (an unknown mode, a file that cannot
//! be read or holds no certificate, a verifying mode with nothing to verify against) is
//! found when the connector is built, at start-up, not at the first connection. The
//! handshake's own failures name the mode, so a refused certificate reads as a setting to
//! look at, not as a network fault.
//!
//! The connector is OpenSSL's (through `native-tls`), as libpq's is: the same chain and
//! host name checks, the same certificates accepted.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;

use native_tls::{Certificate, Identity, TlsConnector};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;

/// How much TLS a connection insists on (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, with a certificate signed by a trusted authority (for any host name).
    VerifyCa,
    /// TLS, with a certificate signed by a trusted authority for the host connected to.
    VerifyFull,
}

impl SslMode {
    pub const ALL: [Self; 5] =
        [Self::Disable, Self::Prefer, Self::Require, Self::VerifyCa, Self::VerifyFull];

    /// The name libpq gives the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }

    /// The nearest mode tokio-postgres knows: whether TLS is tried, and insisted on.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Negotiation;
        match self {
            Self::Disable => Negotiation::Disable,
            Self::Prefer => Negotiation::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Negotiation::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == value)
            .ok_or_else(|| TlsError::UnknownMode(value.to_owned()))
    }
}

/// The certificate authorities that verify the server (libpq's `sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file of one or more certificates; only these are trusted.
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
}

impl RootCerts {
    pub fn as_parameter(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::System => "system".to_owned(),
        }
    }
}

impl FromStr for RootCerts {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(if value == "system" { Self::System } else { Self::File(PathBuf::from(value)) })
    }
}

/// libpq's TLS parameters, each as given (`None`: not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParameters {
    /// `sslmode`.
    pub mode: Option<SslMode>,
    /// `sslrootcert`.
    pub root_certs: Option<RootCerts>,
    /// `sslcert`: the client's certificate (PEM), for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's key (PKCS#8 PEM, unencrypted).
    pub client_key: Option<PathBuf>,
}

impl TlsParameters {
    /// These parameters, with each one `overrides` gives in its place.
    pub fn overridden_by(&self, overrides: &Self) -> Self {
        Self {
            mode: overrides.mode.or(self.mode),
            root_certs: overrides.root_certs.clone().or_else(|| self.root_certs.clone()),
            client_cert: overrides.client_cert.clone().or_else(|| self.client_cert.clone()),
            client_key: overrides.client_key.clone().or_else(|| self.client_key.clone()),
        }
    }

    /// The mode in force: the one given, else `verify-full` with the system's roots (as
    /// libpq), else `prefer`.
    pub fn effective_mode(&self) -> SslMode {
        match (self.mode, &self.root_certs) {
            (Some(mode), _) => mode,
            (None, Some(RootCerts::System)) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
        }
    }

    /// The connector these parameters describe, with every file read and checked.
    pub fn connector(&self) -> Result<Tls, TlsError> {
        let mode = self.effective_mode();
        // With TLS off the files are not used, so they are not read either (as in libpq).
        let tls = mode != SslMode::Disable;
        match &self.root_certs {
            Some(RootCerts::System) if tls && mode != SslMode::VerifyFull => {
                return Err(TlsError::WeakModeWithSystemRoots(mode));
            }
            None if tls && mode.verifies() => return Err(TlsError::NothingToVerifyAgainst(mode)),
            _ => {}
        }
        let checks_chain = mode.verifies() || self.root_certs.is_some();
        let checks_host = mode == SslMode::VerifyFull;
        let root_file = match &self.root_certs {
            Some(RootCerts::File(path)) if tls => Some(path),
            _ => None,
        };
        let identity = if tls { self.client_identity()? } else { None };
        if root_file.is_none() && identity.is_none() {
            let connector = shared_connector(checks_chain, checks_host)?;
            return Ok(Tls { connector, mode });
        }
        let mut builder = TlsConnector::builder();
        builder.request_alpns(&["postgresql"]);
        if let Some(path) = root_file {
            builder.disable_built_in_roots(true);
            for certificate in read_root_certs(path)? {
                builder.add_root_certificate(certificate);
            }
        }
        if let Some(identity) = identity {
            builder.identity(identity);
        }
        builder.danger_accept_invalid_certs(!checks_chain);
        builder.danger_accept_invalid_hostnames(!checks_host);
        let connector = builder.build().map_err(TlsError::Connector)?;
        Ok(Tls { connector, mode })
    }

    fn client_identity(&self) -> Result<Option<Identity>, TlsError> {
        let (certificate, key) = match (&self.client_cert, &self.client_key) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(TlsError::HalfIdentity { missing: "sslkey" }),
            (None, Some(_)) => return Err(TlsError::HalfIdentity { missing: "sslcert" }),
            (Some(certificate), Some(key)) => (certificate, key),
        };
        let key_pem = read("sslkey", key)?;
        let certificate_pem = read("sslcert", certificate)?;
        Identity::from_pkcs8(&certificate_pem, &key_pem).map(Some).map_err(|source| {
            TlsError::InvalidIdentity { certificate: certificate.clone(), key: key.clone(), source }
        })
    }
}

fn read(parameter: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        parameter,
        path: path.to_owned(),
        source,
    })
}

fn read_root_certs(path: &Path) -> Result<Vec<Certificate>, TlsError> {
    let pem = read("sslrootcert", path)?;
    let certificates = Certificate::stack_from_pem(&pem)
        .map_err(|source| TlsError::InvalidRootCerts { path: path.to_owned(), source })?;
    if certificates.is_empty() {
        return Err(TlsError::NoRootCerts { path: path.to_owned() });
    }
    Ok(certificates)
}

/// Why the TLS settings cannot work; each names the parameter to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "sslmode: unknown mode `{0}` (expected disable, prefer, require, verify-ca or verify-full)"
    )]
    UnknownMode(String),
    #[error(
        "sslmode={0} verifies the server's certificate, but no sslrootcert says against what: \
         set sslrootcert to a PEM file of the certificate authorities, or to `system` for the \
         system's trusted roots"
    )]
    NothingToVerifyAgainst(SslMode),
    #[error("weak sslmode={0} may not be used with sslrootcert=system (only verify-full may)")]
    WeakModeWithSystemRoots(SslMode),
    #[error("{parameter}: cannot read {}", .path.display())]
    Unreadable {
        parameter: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sslrootcert: {} is not a PEM file of certificates", .path.display())]
    InvalidRootCerts {
        path: PathBuf,
        #[source]
        source: native_tls::Error,
    },
    #[error("sslrootcert: {} holds no PEM certificate", .path.display())]
    NoRootCerts { path: PathBuf },
    #[error("sslcert and sslkey go together: {missing} is missing")]
    HalfIdentity { missing: &'static str },
    #[error(
        "sslcert / sslkey: {} and {} are not a PEM certificate and its unencrypted PKCS#8 \
         PEM key",
        .certificate.display(),
        .key.display()
    )]
    InvalidIdentity {
        certificate: PathBuf,
        key: PathBuf,
        #[source]
        source: native_tls::Error,
    },
    #[error("building the TLS connector")]
    Connector(#[source] native_tls::Error),
}

/// One per process for each pair of flags: OpenSSL parses the system's whole certificate
/// bundle for every connector it builds (tens of ms). Those that read files are built
/// afresh, so a rotated certificate is picked up.
fn shared_connector(checks_chain: bool, checks_host: bool) -> Result<TlsConnector, TlsError> {
    static SHARED: std::sync::Mutex<[Option<TlsConnector>; 4]> =
        std::sync::Mutex::new([None, None, None, None]);
    // A poisoned lock only means another thread panicked while building: build again.
    let mut shared = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = &mut shared[usize::from(checks_chain) * 2 + usize::from(checks_host)];
    if let Some(connector) = slot {
        return Ok(connector.clone());
    }
    let connector = TlsConnector::builder()
        .request_alpns(&["postgresql"])
        .danger_accept_invalid_certs(!checks_chain)
        .danger_accept_invalid_hostnames(!checks_host)
        .build()
        .map_err(TlsError::Connector)?;
    Ok(slot.insert(connector).clone())
}

/// What every connection to the database is made with: the TLS of one [`SslMode`].
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    mode: SslMode,
}

impl Tls {
    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Tls").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl MakeTlsConnect<Socket> for Tls {
    type Stream = postgres_native_tls::TlsStream<Socket>;
    type TlsConnect = Handshake;
    type Error = native_tls::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, native_tls::Error> {
        Ok(Handshake {
            inner: postgres_native_tls::TlsConnector::new(self.connector.clone(), host),
            host: host.to_owned(),
            mode: self.mode,
        })
    }
}

/// One connection's TLS handshake with `host`.
pub struct Handshake {
    inner: postgres_native_tls::TlsConnector,
    host: String,
    mode: SslMode,
}

impl TlsConnect<Socket> for Handshake {
    type Stream = postgres_native_tls::TlsStream<Socket>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, HandshakeError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let Self { inner, host, mode } = self;
        Box::pin(async move {
            inner.connect(stream).await.map_err(|cause| HandshakeError { host, mode, cause })
        })
    }
}

/// A TLS handshake that failed, with the mode that asked for it (the cause says why:
/// `certificate verify failed (Hostname mismatch)`, `… (unable to get local issuer
/// certificate)`).
#[derive(Debug, thiserror::Error)]
#[error("TLS with {host} failed under sslmode={mode}: {cause}")]
pub struct HandshakeError {
    host: String,
    mode: SslMode,
    // In the message rather than a source: tokio-postgres shows its cause's message only,
    // and the reason is what the reader needs.
    cause: native_tls::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_modes_of_libpq_parse_and_anything_else_is_refused_naming_it() {
        for mode in SslMode::ALL {
            assert_eq!(mode.as_str().parse::<SslMode>().ok(), Some(mode));
        }
        let refused = "verify_full".parse::<SslMode>().err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("sslmode") && e.contains("`verify_full`")));
    }

    #[test]
    fn the_default_is_prefer_unless_the_system_roots_are_asked_for() {
        assert_eq!(TlsParameters::default().effective_mode(), SslMode::Prefer);
        let system = TlsParameters { root_certs: Some(RootCerts::System), ..Default::default() };
        assert_eq!(system.effective_mode(), SslMode::VerifyFull);
    }

    #[test]
    fn a_verifying_mode_with_nothing_to_verify_against_is_refused() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let parameters = TlsParameters { mode: Some(mode), ..Default::default() };
            let error = parameters.connector().err().map(|e| e.to_string());
            assert!(error.is_some_and(|e| e.contains("sslrootcert")), "{mode}");
        }
        let require = TlsParameters { mode: Some(SslMode::Require), ..Default::default() };
        assert!(require.connector().is_ok());
    }

    #[test]
    fn the_system_roots_go_with_verify_full_only() {
        let with = |mode| TlsParameters {
            mode: Some(mode),
            root_certs: Some(RootCerts::System),
            ..Default::default()
        };
        assert!(with(SslMode::VerifyFull).connector().is_ok());
        let weak = with(SslMode::Require).connector().err().map(|e| e.to_string());
        assert!(weak.is_some_and(|e| e.contains("sslmode=require")));
    }

    #[test]
    fn a_root_certificate_file_that_cannot_be_used_is_refused_naming_the_parameter() {
        let missing = TlsParameters {
            mode: Some(SslMode::VerifyFull),
            root_certs: Some(RootCerts::File("/nonexistent/ca.pem".into())),
            ..Default::default()
        };
        let error = missing.connector().err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("sslrootcert") && e.contains("/nonexistent")));

        let not_pem = std::env::temp_dir().join(format!("not-a-ca-{}.pem", uuid::Uuid::new_v4()));
        let written = std::fs::write(&not_pem, "this is no certificate\n");
        assert!(written.is_ok());
        let garbage =
            TlsParameters { root_certs: Some(RootCerts::File(not_pem.clone())), ..missing.clone() };
        let error = garbage.connector().err().map(|e| e.to_string());
        let _ = std::fs::remove_file(&not_pem);
        assert!(error.is_some_and(|e| e.contains("sslrootcert")), "{garbage:?}");

        // Not read when TLS is off, as in libpq.
        let disabled = TlsParameters { mode: Some(SslMode::Disable), ..missing };
        assert!(disabled.connector().is_ok());
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let parameters =
            TlsParameters { client_cert: Some("/etc/client.pem".into()), ..Default::default() };
        let error = parameters.connector().err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("sslkey is missing")));
    }

    #[test]
    fn given_parameters_override_the_urls_one_by_one() {
        let url = TlsParameters {
            mode: Some(SslMode::Require),
            root_certs: Some(RootCerts::File("/url/ca.pem".into())),
            ..Default::default()
        };
        let flags = TlsParameters { mode: Some(SslMode::VerifyFull), ..Default::default() };
        let merged = url.overridden_by(&flags);
        assert_eq!(merged.mode, Some(SslMode::VerifyFull));
        assert_eq!(merged.root_certs, url.root_certs);
    }
}
