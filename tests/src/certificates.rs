//! Certificates a test makes for itself: a certificate authority of its own, and the
//! server and client certificates it signs, written as PEM files, so TLS is tested against
//! real chains without a fixture that expires or a key checked into the repository.
//!
//! Keys are P-256 (quick to generate), written unencrypted as PKCS#8, which both
//! PostgreSQL and the ledger's `sslkey` read. Certificates are valid from an hour ago (a
//! server's clock may lag a little) for a day.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder, X509};

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A server's, for the host names and addresses it is issued for.
    Server,
    /// A client's, whose common name is the user it logs in as.
    Client,
}

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority of the test's own.
pub struct CertificateAuthority {
    certificate: X509,
    key: PKey<Private>,
    path: PathBuf,
    dir: PathBuf,
}

impl CertificateAuthority {
    /// A new authority called `name`, its certificate written to `<dir>/<name>.crt`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let key = new_key()?;
        let subject = common_name(name)?;
        let mut builder = unsigned_certificate(&subject, &key)?;
        builder.set_issuer_name(&subject)?;
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        let key_id = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
        builder.append_extension(key_id)?;
        builder.sign(&key, MessageDigest::sha256())?;
        let certificate = builder.build();
        let path = dir.join(format!("{name}.crt"));
        write(&path, &certificate.to_pem()?)?;
        Ok(Self { certificate, key, path, dir: dir.to_owned() })
    }

    /// The authority's certificate (PEM): what `sslrootcert` names.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signs a certificate called `name` for `purpose`: a server's for `names` (host
    /// names, or IP addresses), a client's for the user `name`. Written to
    /// `<dir>/<name>.crt` and `<dir>/<name>.key`.
    pub fn issue(&self, name: &str, purpose: Purpose, names: &[&str]) -> anyhow::Result<Issued> {
        let key = new_key()?;
        let mut builder = unsigned_certificate(&common_name(name)?, &key)?;
        builder.set_issuer_name(self.certificate.subject_name())?;
        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        builder.append_extension(
            KeyUsage::new().critical().digital_signature().key_encipherment().build()?,
        )?;
        let usage = match purpose {
            Purpose::Server => ExtendedKeyUsage::new().server_auth().build()?,
            Purpose::Client => ExtendedKeyUsage::new().client_auth().build()?,
        };
        builder.append_extension(usage)?;
        if !names.is_empty() {
            let mut alternatives = SubjectAlternativeName::new();
            for name in names {
                match name.parse::<IpAddr>() {
                    Ok(_) => alternatives.ip(name),
                    Err(_) => alternatives.dns(name),
                };
            }
            let alternatives =
                alternatives.build(&builder.x509v3_context(Some(&self.certificate), None))?;
            builder.append_extension(alternatives)?;
        }
        let authority = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&self.certificate), None))?;
        builder.append_extension(authority)?;
        builder.sign(&self.key, MessageDigest::sha256())?;
        let issued = Issued {
            certificate: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        write(&issued.certificate, &builder.build().to_pem()?)?;
        write(&issued.key, &key.private_key_to_pem_pkcs8()?)?;
        Ok(issued)
    }
}

fn new_key() -> anyhow::Result<PKey<Private>> {
    let curve = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&curve)?)?)
}

fn common_name(name: &str) -> anyhow::Result<X509Name> {
    let mut builder = X509NameBuilder::new()?;
    builder.append_entry_by_nid(Nid::COMMONNAME, name)?;
    Ok(builder.build())
}

/// A version 3 certificate for `subject` and its `key`, valid from an hour ago for a day.
fn unsigned_certificate(subject: &X509Name, key: &PKey<Private>) -> anyhow::Result<X509Builder> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let serial_number = serial_number()?;
    builder.set_serial_number(&serial_number)?;
    builder.set_subject_name(subject)?;
    builder.set_pubkey(key)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let (from, until) =
        (Asn1Time::from_unix(i64::try_from(now)? - 3600)?, Asn1Time::days_from_now(1)?);
    builder.set_not_before(&from)?;
    builder.set_not_after(&until)?;
    Ok(builder)
}

fn serial_number() -> anyhow::Result<Asn1Integer> {
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(serial.to_asn1_integer()?)
}

fn write(path: &Path, pem: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}
