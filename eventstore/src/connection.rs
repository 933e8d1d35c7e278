//! From the connection string operators write to a connection: [`Connector`] is what every
//! path to the ledger's database (the pool, and each dedicated connection) is built from.
//!
//! The string is libpq's, a URL (`postgres://user@host/db?sslmode=verify-full&sslrootcert=
//! /etc/ledger/ca.pem`) or `key=value` pairs, and so it carries libpq's TLS parameters
//! ([`TlsParameters`]). tokio-postgres parses the rest but knows only three of the five
//! modes and refuses the other parameters, so they are taken out here and the mode handed
//! on as the nearest it knows (verify-ca and verify-full insist on TLS, like require; the
//! checking is the connector's).
//!
//! Settings given apart from the string (flags, environment) are folded into it by
//! [`with_tls_parameters`] and win over the string's own, so whoever is handed the string
//! connects as configured.

use std::borrow::Cow;
use std::ops::Range;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use tokio_postgres::{Client, Socket};

use crate::tls::{RootCerts, Tls, TlsError, TlsParameters};

/// A connection made by a [`Connector`]; drive it (spawn it) for the client to work.
pub type Connection = tokio_postgres::Connection<Socket, postgres_native_tls::TlsStream<Socket>>;

/// The libpq parameters taken out of the string before tokio-postgres parses it.
const SSL_MODE: &str = "sslmode";
const SSL_ROOT_CERT: &str = "sslrootcert";
const SSL_CERT: &str = "sslcert";
const SSL_KEY: &str = "sslkey";
const TLS_KEYS: [&str; 4] = [SSL_MODE, SSL_ROOT_CERT, SSL_CERT, SSL_KEY];

/// How to reach the database: the parsed connection string and the TLS it asks for, with
/// the certificate files already read.
#[derive(Clone, Debug)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Tls,
}

impl Connector {
    /// Parses `database_url` and builds its TLS connector; the error names the parameter
    /// that cannot work.
    pub fn new(database_url: &str) -> Result<Self, ConnectionError> {
        let (rest, parameters) = split(database_url)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(ConnectionError::Url)?;
        let tls = parameters.connector()?;
        config.ssl_mode(tls.mode().negotiation());
        // Every connection of the ledger shows as such in `pg_stat_activity`.
        if config.get_application_name().is_none() {
            config.application_name("ledger");
        }
        Ok(Self { config, tls })
    }

    /// The parsed settings, for a caller to add its own (an application name, a timeout).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<(Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    pub(crate) fn into_parts(self) -> (tokio_postgres::Config, Tls) {
        (self.config, self.tls)
    }
}

/// Why a connection string cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the connection string does not parse")]
    Url(#[source] tokio_postgres::Error),
    #[error("{0}: the value is not percent-encoded UTF-8")]
    Encoding(&'static str),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// `database_url` with `overrides` in it, each in place of the string's own.
pub fn with_tls_parameters(database_url: &str, overrides: &TlsParameters) -> String {
    let given = [
        (SSL_MODE, overrides.mode.map(|mode| mode.as_str().to_owned())),
        (SSL_ROOT_CERT, overrides.root_certs.as_ref().map(RootCerts::as_parameter)),
        (SSL_CERT, overrides.client_cert.as_ref().map(|path| path.display().to_string())),
        (SSL_KEY, overrides.client_key.as_ref().map(|path| path.display().to_string())),
    ];
    let mut folded = database_url.to_owned();
    // Appended: a parameter given twice counts as the last given, here as in libpq.
    for (key, value) in given.into_iter().filter_map(|(key, value)| Some((key, value?))) {
        if url_rest(database_url).is_some() {
            let separator = match (folded.contains('?'), folded.ends_with(['?', '&'])) {
                (_, true) => "",
                (true, false) => "&",
                (false, false) => "?",
            };
            let value = utf8_percent_encode(&value, NON_ALPHANUMERIC);
            folded.push_str(&format!("{separator}{key}={value}"));
        } else {
            let value = value.replace('\\', "\\\\").replace('\'', "\\'");
            folded.push_str(&format!(" {key}='{value}'"));
        }
    }
    folded
}

/// The string without its TLS parameters, for tokio-postgres, and those parameters.
fn split(database_url: &str) -> Result<(String, TlsParameters), ConnectionError> {
    let (rest, found) = match url_rest(database_url) {
        Some(rest) => split_url(database_url, rest)?,
        None => split_key_values(database_url),
    };
    let mut parameters = TlsParameters::default();
    for (key, value) in found {
        match key {
            SSL_MODE => parameters.mode = Some(value.parse()?),
            SSL_ROOT_CERT => parameters.root_certs = value.parse().ok(),
            SSL_CERT => parameters.client_cert = Some(value.into()),
            _ => parameters.client_key = Some(value.into()),
        }
    }
    Ok((rest, parameters))
}

/// What follows the scheme of a URL; `None` for a `key=value` string.
fn url_rest(database_url: &str) -> Option<&str> {
    ["postgres://", "postgresql://"].iter().find_map(|scheme| database_url.strip_prefix(scheme))
}

type Found = Vec<(&'static str, String)>;

/// A URL's query, where the parameters are (after the credentials, as tokio-postgres
/// reads it: a `?` in a password is not the query's start).
fn split_url(database_url: &str, rest: &str) -> Result<(String, Found), ConnectionError> {
    let after_credentials = rest.find('@').map_or(0, |at| at + 1);
    let Some(question) = rest[after_credentials..].find('?') else {
        return Ok((database_url.to_owned(), Vec::new()));
    };
    let query_start = database_url.len() - rest.len() + after_credentials + question;
    let (base, query) = (&database_url[..query_start], &database_url[query_start + 1..]);
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match TLS_KEYS.into_iter().find(|tls| decode(key).is_some_and(|key| key == *tls)) {
            Some(tls) => {
                let value = decode(value).ok_or(ConnectionError::Encoding(tls))?;
                found.push((tls, value.into_owned()));
            }
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, found))
}

fn decode(text: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(text).decode_utf8().ok()
}

/// A `key=value` string's TLS parameters cut out of it. A string that does not tokenise
/// goes to tokio-postgres whole, to be refused with its account of why.
fn split_key_values(database_url: &str) -> (String, Found) {
    let Some(pairs) = key_value_pairs(database_url) else {
        return (database_url.to_owned(), Vec::new());
    };
    let mut rest = String::new();
    let mut found = Vec::new();
    let mut copied_to = 0;
    for (key, value, span) in pairs {
        if let Some(tls) = TLS_KEYS.into_iter().find(|tls| *tls == key) {
            rest.push_str(&database_url[copied_to..span.start]);
            copied_to = span.end;
            found.push((tls, value));
        }
    }
    rest.push_str(&database_url[copied_to..]);
    (rest, found)
}

/// Each `key = value` of a libpq key/value string (values optionally single-quoted, with
/// backslash escapes), with the bytes it spans.
fn key_value_pairs(text: &str) -> Option<Vec<(&str, String, Range<usize>)>> {
    let mut chars = text.char_indices().peekable();
    let mut pairs = Vec::new();
    let position = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        chars.peek().map_or(text.len(), |&(at, _)| at)
    };
    loop {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let start = position(&mut chars);
        if start == text.len() {
            return Some(pairs);
        }
        while chars.next_if(|&(_, c)| !c.is_whitespace() && c != '=').is_some() {}
        let key = &text[start..position(&mut chars)];
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        chars.next_if(|&(_, c)| c == '=')?;
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if(|&(_, c)| c == '\'').is_some();
        let mut value = String::new();
        loop {
            match chars.next() {
                Some((_, '\'')) if quoted => break,
                Some((_, c)) if c.is_whitespace() && !quoted => break,
                Some((_, '\\')) => value.push(chars.next()?.1),
                Some((_, c)) => value.push(c),
                None if quoted => return None,
                None => break,
            }
        }
        pairs.push((key, value, start..position(&mut chars)));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::tls::SslMode;

    fn parameters(database_url: &str) -> (String, TlsParameters) {
        split(database_url).unwrap_or_else(|error| panic!("{database_url}: {error}"))
    }

    #[test]
    fn the_tls_parameters_of_a_url_are_taken_out_and_the_rest_is_left_as_written() {
        let (rest, found) = parameters(
            "postgres://ledger:p%3Fss@db.internal:5432/ledger?application_name=x&sslmode=\
             verify-full&sslrootcert=%2Fetc%2Fledger%2Fca%20bundle.pem&connect_timeout=3",
        );
        assert_eq!(
            rest,
            "postgres://ledger:p%3Fss@db.internal:5432/ledger?application_name=x&connect_timeout=3"
        );
        assert_eq!(found.mode, Some(SslMode::VerifyFull));
        assert_eq!(found.root_certs, Some(RootCerts::File("/etc/ledger/ca bundle.pem".into())));
        let (rest, found) = parameters("postgresql://h/db?sslmode=require");
        assert_eq!((rest.as_str(), found.mode), ("postgresql://h/db", Some(SslMode::Require)));
    }

    #[test]
    fn a_question_mark_in_a_password_does_not_start_the_query() {
        let (rest, found) = parameters("postgres://u:pa?ss@h/db?sslmode=disable");
        assert_eq!(
            (rest.as_str(), found.mode),
            ("postgres://u:pa?ss@h/db", Some(SslMode::Disable))
        );
    }

    #[test]
    fn a_key_value_string_gives_up_its_tls_parameters_too() {
        let (rest, found) = parameters(
            "host=db user=ledger sslmode = verify-ca sslrootcert='/etc/my ca.pem' \
             sslcert=/c.pem sslkey=/k\\ ey.pem dbname=ledger",
        );
        assert_eq!(
            rest.split_whitespace().collect::<Vec<_>>(),
            ["host=db", "user=ledger", "dbname=ledger"]
        );
        assert_eq!(found.mode, Some(SslMode::VerifyCa));
        assert_eq!(found.root_certs, Some(RootCerts::File("/etc/my ca.pem".into())));
        assert_eq!(found.client_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(found.client_key, Some(PathBuf::from("/k ey.pem")));
    }

    #[test]
    fn an_unknown_mode_is_refused_naming_the_parameter_and_the_value() {
        let error = split("postgres://h/db?sslmode=verify_full").err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("sslmode") && e.contains("verify_full")));
        let error = split("host=h sslmode=strict").err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("`strict`")));
    }

    #[test]
    fn other_parameters_are_tokio_postgres_business() {
        let error = Connector::new("postgres://h/db?sslcrl=/crl.pem").err();
        assert!(matches!(error, Some(ConnectionError::Url(_))), "{error:?}");
        assert!(Connector::new("postgres://h/db?sslmode=require&connect_timeout=2").is_ok());
    }

    #[test]
    fn flags_folded_into_the_string_win_over_its_own_parameters() {
        let overrides = TlsParameters {
            mode: Some(SslMode::VerifyFull),
            root_certs: Some(RootCerts::File("/etc/it's here/ca.pem".into())),
            ..Default::default()
        };
        for database_url in [
            "postgres://h/db",
            "postgres://h/db?sslmode=require",
            "postgres://h/db?",
            "host=h dbname=db sslmode=require",
        ] {
            let folded = with_tls_parameters(database_url, &overrides);
            let (_, found) = parameters(&folded);
            assert_eq!(found.mode, Some(SslMode::VerifyFull), "{folded}");
            assert_eq!(found.root_certs, overrides.root_certs, "{folded}");
        }
        let untouched = with_tls_parameters("postgres://h/db", &TlsParameters::default());
        assert_eq!(untouched, "postgres://h/db");
    }

    #[test]
    fn the_negotiation_tokio_postgres_gets_insists_on_tls_for_every_verifying_mode() {
        use tokio_postgres::config::SslMode as Negotiation;
        let negotiation = |url: &str| Connector::new(url).map(|c| c.config.get_ssl_mode()).ok();
        assert_eq!(negotiation("postgres://h/db"), Some(Negotiation::Prefer));
        assert_eq!(negotiation("postgres://h/db?sslmode=disable"), Some(Negotiation::Disable));
        assert_eq!(negotiation("postgres://h/db?sslmode=require"), Some(Negotiation::Require));
        assert_eq!(
            negotiation("postgres://h/db?sslmode=verify-full&sslrootcert=system"),
            Some(Negotiation::Require)
        );
    }
}
