//! `rise-registry oci-token …`: the registry side of `oci-token`.
//!
//! - `dev-ca` writes a development CA and a token-signing key certified by
//!   it, so a local registry can trust serve without any PKI at hand;
//! - `registry-config` prints the `auth: token:` block of the registry's
//!   `config.yml` for the loaded configuration, and writes its
//!   `rootcertbundle` (the last certificate of the configured chain).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::Status;
use crate::config::{Config, ConfigErrors, RegistryConfig};
use crate::registry::oci_token::keys::Algorithm;

/// What `dev-ca` wrote.
#[derive(Debug)]
pub struct DevCa {
    pub ca_cert: PathBuf,
    pub key: PathBuf,
    pub chain: PathBuf,
}

/// Lifetime of development certificates.
const DEV_VALIDITY_SECONDS: i64 = 365 * 24 * 3600;

/// Writes `ca.crt`, `token.key` and `token.crt` (leaf, then CA) into `dir`.
///
/// # Errors
/// When a file exists and `force` is not set, or writing fails.
pub fn dev_ca(dir: &Path, algorithm: Algorithm, force: bool) -> Result<DevCa> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let out = DevCa {
        ca_cert: dir.join("ca.crt"),
        key: dir.join("token.key"),
        chain: dir.join("token.crt"),
    };
    for path in [&out.ca_cert, &out.key, &out.chain] {
        if path.exists() && !force {
            bail!(
                "`{}` exists; pass --force to replace it (the registry must then be given the new ca.crt)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;

    let alg = match algorithm {
        Algorithm::Es256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::Rs256 => &rcgen::PKCS_RSA_SHA256,
    };
    let now = crate::clock::unix_now();
    let validity = |params: &mut CertificateParams| -> Result<()> {
        let at = |secs: i64| {
            time::OffsetDateTime::from_unix_timestamp(secs)
                .context("the system clock is out of range")
        };
        // An hour of slack for clocks that are a little behind.
        params.not_before = at(now - 3600)?;
        params.not_after = at(now + DEV_VALIDITY_SECONDS)?;
        Ok(())
    };

    let ca_key = KeyPair::generate_for(alg).context("generating the CA key")?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "rise-registry development token CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca)?;
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(alg).context("generating the signing key")?;
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "rise-registry token signer");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut leaf)?;
    let leaf_cert = leaf
        .signed_by(&key, &issuer)
        .context("signing the token certificate")?;

    write_file(&out.ca_cert, ca_cert.pem().as_bytes(), false)?;
    write_file(&out.key, key.serialize_pem().as_bytes(), true)?;
    write_file(
        &out.chain,
        format!("{}{}", leaf_cert.pem(), ca_cert.pem()).as_bytes(),
        false,
    )?;
    Ok(out)
}

/// Writes `bytes` to `path`; private files are created mode 0600.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("writing `{}`", path.display()))?;
    // `mode` applies only to a file created here: one replaced with
    // --force keeps its old mode unless set again, before the key is in it.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making `{}` private", path.display()))?;
    }
    file.write_all(bytes)
        .with_context(|| format!("writing `{}`", path.display()))
}

/// `dev-ca`'s report: what was written and the config to use it with.
///
/// # Errors
/// When generating or writing fails.
pub(crate) fn run_dev_ca(
    dir: &Path,
    algorithm: Algorithm,
    force: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    let written = dev_ca(dir, algorithm, force)?;
    writeln!(
        out,
        "Wrote a development CA and token-signing key (valid one year):\n  \
         {ca}  the CA: the registry's auth.token.rootcertbundle\n  \
         {key}  the signing key (mode 0600)\n  \
         {chain}  the key's certificate, then the CA\n\n\
         In rise-registry's config:\n  \
         registry:\n    \
         type: oci-token\n    \
         signing_key_file: {key}\n    \
         certificate_chain_file: {chain}\n\n\
         Then `rise-registry oci-token registry-config --realm URL` prints the registry's side.",
        ca = written.ca_cert.display(),
        key = written.key.display(),
        chain = written.chain.display(),
    )?;
    Ok(Status::Success)
}

/// The registry's `auth:` block for `config`, pointing at `realm`, with the
/// root bundle at `bundle_path`.
///
/// # Errors
/// When the registry is not `oci-token`.
pub(crate) fn registry_auth_block(
    config: &Config,
    realm: &str,
    bundle_path: &str,
) -> Result<String> {
    let RegistryConfig::OciToken(oci) = &config.registry else {
        bail!(
            "registry.type is `{}`; the registry-config command is for `oci-token`",
            config.registry.type_name()
        );
    };
    Ok(format!(
        "# The registry's config.yml (CNCF distribution): token auth with rise-registry as realm.\n\
         auth:\n  \
         token:\n    \
         realm: {realm}\n    \
         service: {service}\n    \
         issuer: {issuer}\n    \
         rootcertbundle: {bundle_path}\n",
        service = oci.service,
        issuer = oci.issuer,
    ))
}

/// The last certificate of the configured chain, as PEM: the root the
/// registry must trust (when the chain ends at its root, as `dev-ca`'s does).
///
/// # Errors
/// When the registry is not `oci-token` or the chain cannot be read.
pub(crate) fn root_bundle(config: &Config) -> Result<String> {
    let RegistryConfig::OciToken(oci) = &config.registry else {
        bail!("registry.type is not `oci-token`");
    };
    let path = &oci.certificate_chain_file;
    let pem = path.read().map_err(|e| ConfigErrors::sorted(vec![e]))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigErrors::sorted(vec![path.problem(format!("is not PEM: {e}"))]))?;
    let last = chain
        .last()
        .ok_or_else(|| ConfigErrors::sorted(vec![path.problem("holds no certificate")]))?;
    Ok(pem_encode("CERTIFICATE", last.as_ref()))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `registry-config`: prints the block; writes the bundle when asked.
///
/// # Errors
/// As [`registry_auth_block`] and [`root_bundle`], or when writing fails.
pub(crate) fn run_registry_config(
    config: &Config,
    realm: Option<&str>,
    bundle_path: &str,
    bundle_out: Option<&Path>,
    out: &mut dyn Write,
) -> Result<Status> {
    let default = config.server.default_realm();
    let realm = realm.unwrap_or(&default);
    let block = registry_auth_block(config, realm, bundle_path)?;
    if let Some(file) = bundle_out {
        write_file(file, root_bundle(config)?.as_bytes(), false)?;
    }
    out.write_all(block.as_bytes())?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::oci_token::keys::SigningKey;

    #[test]
    fn dev_ca_writes_a_key_its_chain_accepts_and_refuses_to_overwrite() {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let dir = tempfile::tempdir().unwrap();
            let written = dev_ca(dir.path(), alg, false).unwrap();
            let key = std::fs::read(&written.key).unwrap();
            let chain = std::fs::read(&written.chain).unwrap();
            let signing = SigningKey::load(&key, &chain).unwrap();
            assert_eq!(signing.chain().len(), 2, "leaf, then CA");
            let ca = std::fs::read(&written.ca_cert).unwrap();
            let ca = CertificateDer::from_pem_slice(&ca).unwrap();
            assert_eq!(signing.chain()[1], ca);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&written.key)
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            let again = dev_ca(dir.path(), alg, false).unwrap_err().to_string();
            assert!(again.contains("--force"), "{again}");
            // A key file someone left readable is private again once
            // --force writes the new key into it.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&written.key, std::fs::Permissions::from_mode(0o644))
                    .unwrap();
            }
            assert!(dev_ca(dir.path(), alg, true).is_ok());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&written.key)
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "rewritten with --force");
            }
        }
    }

    #[test]
    fn pem_encoding_round_trips() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .as_ref(),
            &der[..]
        );
    }
}
