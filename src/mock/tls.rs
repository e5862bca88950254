//! TLS for the mock API server. kubectl sends bearer tokens only over TLS, so a cluster answers
//! HTTPS as well as plain HTTP on its one port (the first byte of a connection tells which).
//! The certificate is a fixed test certificate for 127.0.0.1, ::1 and localhost, issued by a
//! fixed test CA that kubeconfigs carry as `certificate-authority-data`. The key is public on
//! purpose: it only ever guards loopback test traffic.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::Error;

/// The test CA (valid 2020-2120).
pub const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIUROA1ChbilsR0yeDq7YNm/9d3P+swCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQYWdlbnRvcHMtbW9jay1jYTAgFw0yMDAxMDEwMDAwMDBaGA8y
MTIwMDEwMTAwMDAwMFowGzEZMBcGA1UEAwwQYWdlbnRvcHMtbW9jay1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABGuU96MnvO+YN7x7oDFfN1zNo9OeJfnkZ9jA
D8oLhy+vuM+nOTxOhHmFsHoFH0vbR+8vuo2UmBFe3+T9FVfKRU+jRTBDMBIGA1Ud
EwEB/wQIMAYBAf8CAQAwDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRTcwOobIEb
eePUs/SwVb+pNHBwOzAKBggqhkjOPQQDAgNJADBGAiEAoWLBCiumUTyEZwCrctrk
zRZF8Vu46bFBPBYG6l1QxMcCIQDZwBt4WlYxFueBb68zfycG8pjAGnv11LO29YxP
/xf3fQ==
-----END CERTIFICATE-----
";

const SERVER_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBxzCCAW2gAwIBAgIULt0WYPrBUN6Ac/6AJg2L4T3UR+0wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQYWdlbnRvcHMtbW9jay1jYTAgFw0yMDAxMDEwMDAwMDBaGA8y
MTIwMDEwMTAwMDAwMFowIjEgMB4GA1UEAwwXYWdlbnRvcHMtbW9jay1hcGlzZXJ2
ZXIwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASXG1FwJ1MwW7Bf0nGiusi+5TcC
k4gFZsRBs5K25r/uXBV3crkb4KJUZtVKAwiUcnwxnTnEs0JhgncGz7/ag2Lfo4GF
MIGCMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsG
AQUFBwMBMCwGA1UdEQQlMCOHBH8AAAGHEAAAAAAAAAAAAAAAAAAAAAGCCWxvY2Fs
aG9zdDAfBgNVHSMEGDAWgBRTcwOobIEbeePUs/SwVb+pNHBwOzAKBggqhkjOPQQD
AgNIADBFAiEAvuW2AYpGNyfqX98AQaMUwYAvLVRY2JUVobWz2tp5GcACICJvW9EE
mqgJa2HBPGpBpqJjG5asjb6JjB/QkdK1QwuH
-----END CERTIFICATE-----
";

const SERVER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8Rf5SmDI1UM3cIen
GLTy2vLwQ1d0Aq/LDlhdg8bUDaqhRANCAASXG1FwJ1MwW7Bf0nGiusi+5TcCk4gF
ZsRBs5K25r/uXBV3crkb4KJUZtVKAwiUcnwxnTnEs0JhgncGz7/ag2Lf
-----END PRIVATE KEY-----
";

/// The acceptor of the mock's HTTPS connections (HTTP/1.1 only, as the server speaks).
pub fn acceptor() -> Result<TlsAcceptor, Error> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Internal(format!("mock cluster TLS {what}: {e}"));
    let cert = CertificateDer::from_pem_slice(SERVER_CERT_PEM.as_bytes()).map_err(|e| bad("certificate", &e))?;
    let ca = CertificateDer::from_pem_slice(CA_PEM.as_bytes()).map_err(|e| bad("CA certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).map_err(|e| bad("key", &e))?;
    // An explicit provider: with more than one compiled in, rustls cannot pick a default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert, ca], key)
        .map_err(|e| bad("certificate", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn acceptor_builds() {
        assert!(super::acceptor().is_ok());
    }
}
