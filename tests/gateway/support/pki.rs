//! A test certificate authority, made once per test process: a server certificate for
//! 127.0.0.1 (the provider in HTTPS mode), a client certificate it signed (mutual TLS,
//! `tls_client_auth`), and a self-signed client certificate
//! (`self_signed_tls_client_auth`). Every HTTP client of the harness trusts the CA.

use std::path::PathBuf;
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca_pem: String,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Signed by the CA, subject `CN=gateway`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Self-signed, subject `CN=gateway-self-signed`.
    pub self_signed_cert: PathBuf,
    pub self_signed_key: PathBuf,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(make)
}

/// A client that trusts the test CA, follows no redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(pki().ca_pem.as_bytes()).expect("CA certificate"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn make() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokengate test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let ca = Issuer::new(ca_params, ca_key);

    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        (params, key)
    };
    let (server_params, server_key) =
        leaf(vec!["127.0.0.1".into(), "localhost".into()], "127.0.0.1");
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .expect("server certificate");
    let (client_params, client_key) = leaf(Vec::new(), "gateway");
    let client_cert = client_params
        .signed_by(&client_key, &ca)
        .expect("client certificate");
    let (self_params, self_key) = leaf(Vec::new(), "gateway-self-signed");
    let self_cert = self_params
        .self_signed(&self_key)
        .expect("self-signed certificate");

    Pki {
        ca_pem: ca_cert.pem(),
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert.pem()),
        server_key: write("server-key.pem", &server_key.serialize_pem()),
        client_cert: write("client.pem", &client_cert.pem()),
        client_key: write("client-key.pem", &client_key.serialize_pem()),
        self_signed_cert: write("self-signed.pem", &self_cert.pem()),
        self_signed_key: write("self-signed-key.pem", &self_key.serialize_pem()),
        _dir: dir,
    }
}
