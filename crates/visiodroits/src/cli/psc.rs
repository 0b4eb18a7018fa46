//! `psc dev-issuer` and `psc mint`: a stand-in Pro Santé Connect issuer on this machine, so that
//! a vendor can try the whole token flow offline — the server configured for it, a token minted
//! for a given professional and bound to the software's certificate, then the token exchange and
//! the exchanges (`visiodroits-client … --token … --exchange`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use visiodroits_devkit::psc::{client_secret, thumbprint_of_pem, DevIssuer, CLIENT_ID};

/// Serves the stand-in issuer until Ctrl-C, with the dev PKI's server certificate; the client
/// secret of its introspection endpoint is kept in `secret_file` (created when missing).
pub async fn dev_issuer(listen: SocketAddr, pki: &Path, secret_file: &Path) -> anyhow::Result<()> {
    let secret = client_secret(secret_file)?;
    let issuer = DevIssuer::start_with_pki(listen, pki, &secret)
        .await
        .with_context(|| {
            format!(
                "cannot serve on {listen} with the dev PKI of {}",
                pki.display()
            )
        })?;
    let iss = &issuer.issuer;
    println!(
        "stand-in Pro Santé Connect issuer: {iss}\n\n\
         The server's variables for it:\n\
         VD_PSC_ISSUER={iss}\n\
         VD_PSC_AUDIENCE={CLIENT_ID}\n\
         VD_PSC_CA={ca}\n\
         VD_PSC_INTROSPECTION_URL={iss}/protocol/openid-connect/token/introspect\n\
         VD_PSC_CLIENT_ID={CLIENT_ID}\n\
         VD_PSC_CLIENT_SECRET_FILE={secret}\n\n\
         A token for a professional, bound to the software's certificate:\n\
         visiodroits psc mint --issuer {iss} --ca {ca} --ps-id 810001234565 --bind {org}\n\n\
         Ctrl-C stops it.",
        ca = pki.join("ca/root.pem").display(),
        secret = secret_file.display(),
        org = pki.join("clients/org.pem").display(),
    );
    tokio::signal::ctrl_c().await?;
    drop(issuer);
    Ok(())
}

/// What `psc mint` asks for.
pub struct MintArgs<'a> {
    pub issuer: &'a str,
    pub ca: &'a Path,
    pub ps_id: &'a str,
    /// The certificate (PEM) the token is bound to.
    pub bind: Option<&'a Path>,
    pub structures: &'a [String],
    pub opaque: bool,
    pub lifetime: i64,
}

/// Asks the running stand-in issuer for a token; returns it.
pub async fn mint(a: &MintArgs<'_>) -> anyhow::Result<String> {
    let mut form = format!(
        "ps_id={}&lifetime={}",
        crate::token::form_encode(a.ps_id),
        a.lifetime
    );
    if let Some(cert) = a.bind {
        let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint_of_pem(&pem)?);
        form.push_str(&format!("&x5t={x5t}"));
    }
    if !a.structures.is_empty() {
        form.push_str(&format!(
            "&structure={}",
            crate::token::form_encode(&a.structures.join(","))
        ));
    }
    if a.opaque {
        form.push_str("&opaque=true");
    }
    let tls = crate::token::https_client(Some(("--ca", a.ca)), None)?;
    let url = format!("{}/dev/mint", a.issuer.trim_end_matches('/'));
    let body = crate::http_client::send(
        crate::http_client::Outbound {
            url: &url,
            form: Some(form),
            authorization: None,
        },
        Some(&Arc::new(tls)),
        Duration::from_secs(10),
        64 * 1024,
    )
    .await
    .with_context(|| {
        format!("cannot mint at {url} (is `visiodroits psc dev-issuer` or the demo running?)")
    })?;
    Ok(String::from_utf8_lossy(&body).trim().to_string())
}
