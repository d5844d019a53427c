//! TLS for every outgoing HTTPS request: rustls with the ring provider, the system's
//! trusted roots plus a connection's `tls.ca_file`, and client certificates (mTLS).

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

/// Makes ring rustls's provider for this process. Every reqwest client must be built
/// after it (ferry calls it before building any); calling it again does nothing.
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder with ferry's defaults: no redirect followed by the client (the
/// configured headers and credentials must reach the configured origin only, so a 3xx
/// is handled by the connector), a bounded connect time, ferry's user agent.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder()
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

/// The PEM files of a connection's `tls` table, read relative to `folder`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Extra trusted certificate authorities (PEM, one or more).
    pub ca_file: Option<String>,
    /// A client certificate (PEM chain) and its private key (PEM) for servers that ask
    /// for one.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

impl TlsFiles {
    /// Applies these files to `builder`; an error names the key and what is wrong.
    pub fn apply(
        &self,
        folder: &Path,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, (&'static str, String)> {
        let read = |key: &'static str, path: &str| {
            let full = folder.join(path);
            std::fs::read(&full).map_err(|e| (key, format!("cannot read {}: {e}", full.display())))
        };
        if let Some(path) = &self.ca_file {
            let pem = read("tls.ca_file", path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                (
                    "tls.ca_file",
                    format!("{path} holds no PEM certificate ferry can read: {e}"),
                )
            })?;
            if certs.is_empty() {
                return Err(("tls.ca_file", format!("{path} holds no PEM certificate")));
            }
            builder = builder.tls_certs_merge(certs);
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read("tls.client_cert", cert)?;
                pem.push(b'\n');
                pem.extend(read("tls.client_key", key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    (
                        "tls.client_cert",
                        format!(
                            "{cert} and {key} are not a PEM certificate and its private key: {e}"
                        ),
                    )
                })?;
                builder = builder.identity(identity);
            }
            (Some(_), None) => {
                return Err((
                    "tls.client_key",
                    "is missing; a client_cert needs its client_key".into(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "tls.client_cert",
                    "is missing; a client_key needs its client_cert".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(builder)
    }
}

/// What a TLS failure in `chain` (an error's causes, joined) means, in words a person can
/// act on; `None` when it is not a certificate problem.
pub fn explain(chain: &str) -> Option<&'static str> {
    // rustls names the failure in its Debug form (`UnknownIssuer`) or in words
    // (`certificate not valid for name …`), depending on the case.
    let reasons: [(&[&str], &str); 7] = [
        (
            &["UnknownIssuer", "unknown issuer"],
            "the server's certificate was not issued by a trusted authority (unknown issuer); add the authority that signed it with tls.ca_file",
        ),
        (
            &["NotValidForName", "not valid for name"],
            "the server's certificate is not valid for this host name (wrong host)",
        ),
        (
            &["Expired", "certificate expired"],
            "the server's certificate has expired",
        ),
        (
            &["NotValidYet", "not valid yet"],
            "the server's certificate is not valid yet (check the clocks)",
        ),
        (
            &["CertificateRequired"],
            "the server asks for a client certificate; set tls.client_cert and tls.client_key on the connection",
        ),
        (
            &["BadCertificate"],
            "the server refused the client certificate (bad certificate)",
        ),
        (
            &["UnknownCA"],
            "the server does not trust the client certificate's authority (unknown CA)",
        ),
    ];
    reasons
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| chain.contains(n)))
        .map(|(_, why)| *why)
}
