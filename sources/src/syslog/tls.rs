//! The TLS acceptor of the syslog source (rustls with the ring provider), from PEM
//! files; with `ca_file`, client certificates are required and checked.

use super::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_config::OptionError;
use std::sync::Arc;

pub fn acceptor(cfg: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, OptionError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cfg.crt_file).and_then(|it| it.collect()).map_err(|e| {
            OptionError::new("tls.crt_file", format!("cannot read certificates from \"{}\": {e}", cfg.crt_file))
        })?;
    if certs.is_empty() {
        return Err(OptionError::new("tls.crt_file", format!("\"{}\" holds no certificate", cfg.crt_file)));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(|e| {
        OptionError::new("tls.key_file", format!("cannot read a private key from \"{}\": {e}", cfg.key_file))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| OptionError::new("tls", e.to_string()))?;
    let builder = match &cfg.ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| OptionError::new("tls.ca_file", format!("cannot read \"{ca}\": {e}")))?
            {
                let c = c.map_err(|e| OptionError::new("tls.ca_file", format!("\"{ca}\": {e}")))?;
                roots.add(c).map_err(|e| OptionError::new("tls.ca_file", format!("\"{ca}\": {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| OptionError::new("tls.ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| OptionError::new("tls.key_file", format!("the key does not fit the certificate: {e}")))?;
    // No TLS 1.3 session tickets: a syslog sender only writes, so tickets would sit unread
    // in its socket, and closing a socket with unread data sends a reset, which discards
    // whatever of its last messages this side had not read yet (seen with loggen).
    config.send_tls13_tickets = 0;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
