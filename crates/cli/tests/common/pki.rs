//! A test CA and server certificate, made with the openssl CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA and a server certificate for localhost and 127.0.0.1 (not
/// 127.0.0.2), made with the openssl CLI.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn test_pki(root: &Path) -> TestPki {
    let dir = root.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("openssl.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = Test upstream CA\n\
         [ca_ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [server_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut args = vec![
        "req",
        "-x509",
        "-config",
        "openssl.cnf",
        "-extensions",
        "ca_ext",
    ];
    args.extend(ec);
    args.extend([
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
    ]);
    openssl(&dir, &args);
    let mut args = vec![
        "req",
        "-new",
        "-config",
        "openssl.cnf",
        "-subj",
        "/CN=localhost",
    ];
    args.extend(ec);
    args.extend(["-nodes", "-keyout", "server.key", "-out", "server.csr"]);
    openssl(&dir, &args);
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "server_ext",
        ],
    );
    TestPki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}
