//! HTTPS for a double started with [`DoubleOptions::tls`](crate::DoubleOptions): a certificate
//! authority and a serving certificate for `127.0.0.1` and `localhost`, made when the double
//! starts (rcgen), and the kubeconfig's `certificate-authority-data` that trusts it.
//!
//! Why: client-go sends a kubeconfig's credentials (bearer token, impersonation headers) only
//! over TLS, as every real API server serves, so real `kubectl` against a plain-HTTP double runs
//! as `system:anonymous`. Over HTTPS it authenticates as the kubeconfig's user, and RBAC answers
//! it as it answers the plugins. The serving certificate is a leaf signed by the CA (not a
//! self-signed leaf, which rustls' verifier rejects as a trust anchor), with the SANs the
//! clients check and the `serverAuth` extended key usage; HTTP/1.1 only (ALPN `http/1.1`), as
//! the double serves.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// The double's TLS: the acceptor and the CA's certificate (PEM) clients trust.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub ca_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Tls {
    /// A fresh CA and serving certificate (new keys every time).
    pub fn generate() -> io::Result<Tls> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
        let ca_key = KeyPair::generate().map_err(other)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        ca.distinguished_name.push(DnType::CommonName, "apiserver-double CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).map_err(other)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().map_err(other)?;
        let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        leaf.distinguished_name.push(DnType::CommonName, "apiserver-double");
        leaf.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into().map_err(other)?),
        ];
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&key, &issuer).map_err(other)?;

        let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
        let private = pki_types::PrivateKeyDer::Pkcs8(pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(other)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), ca_pem: ca_cert.pem() })
    }
}
