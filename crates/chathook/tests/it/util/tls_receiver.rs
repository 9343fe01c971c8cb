//! A real HTTPS receiver on loopback that requires a client certificate (mutual TLS), with its own test
//! CA: the CA signs the receiver's certificate (for 127.0.0.1) and the client certificates tests hand
//! to endpoints. It answers every request that completes the handshake with 200 and records its
//! headers; a handshake that fails is counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A client certificate and its key, PEM.
pub struct ClientPem {
    pub cert: String,
    pub key: String,
}

#[derive(Default)]
struct Seen {
    /// The headers of each request answered.
    requests: Mutex<Vec<HashMap<String, String>>>,
    /// Handshakes that failed (no or an unknown client certificate).
    refused: AtomicUsize,
}

pub struct TlsReceiver {
    /// `https://127.0.0.1:<port>/hook`.
    pub url: String,
    /// The test CA's certificate, PEM (what endpoints trust as `tls.ca_cert`).
    pub ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    Arc::new(default_provider())
}

impl TlsReceiver {
    pub async fn start() -> TlsReceiver {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "chathook test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let task = tokio::spawn(serve(listener, acceptor, seen.clone()));
        TlsReceiver {
            url,
            ca_pem: ca.pem(),
            ca,
            ca_key,
            seen,
            task,
        }
    }

    /// A client certificate the receiver accepts (signed by its CA).
    pub fn client_cert(&self) -> ClientPem {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "chathook test client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        ClientPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// The headers of each request answered.
    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.seen.requests.lock().unwrap().clone()
    }

    /// Handshakes refused.
    pub fn refused(&self) -> usize {
        self.seen.refused.load(Ordering::SeqCst)
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, seen: Arc<Seen>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, seen) = (acceptor.clone(), seen.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                seen.refused.fetch_add(1, Ordering::SeqCst);
                return;
            };
            if let Some(headers) = read_request(&mut tls).await {
                seen.requests.lock().unwrap().push(headers);
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            }
        });
    }
}

/// Reads one HTTP/1.1 request (its head and a `content-length` body); its headers, lower-cased names.
async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<HashMap<String, String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(headers)
}
