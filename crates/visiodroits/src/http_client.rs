//! The server's outbound HTTP/1.1 client, one request per connection: CRL distribution points
//! (plain HTTP) and the Pro Santé Connect issuer (HTTPS, JWKS and introspection). Bounded in time
//! and in the size of what it reads; a non-2xx answer is an error naming only the status.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

/// One outbound request.
pub(crate) struct Outbound<'a> {
    pub url: &'a str,
    /// `None`: GET; `Some`: POST of this form (`application/x-www-form-urlencoded`).
    pub form: Option<String>,
    /// `Authorization` header value (client credentials), never logged.
    pub authorization: Option<String>,
}

impl<'a> Outbound<'a> {
    pub(crate) fn get(url: &'a str) -> Self {
        Outbound {
            url,
            form: None,
            authorization: None,
        }
    }
}

/// Sends `req` and returns the body of a 2xx answer, at most `max_bytes`, within `timeout`.
/// `https://` URLs need `tls` (whose roots decide which servers are trusted).
pub(crate) async fn send(
    req: Outbound<'_>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
    max_bytes: usize,
) -> anyhow::Result<Bytes> {
    let uri: http::Uri = req.url.parse().context("not a URL")?;
    let secure = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!("only http:// and https:// URLs are fetched"),
    };
    let host = uri
        .host()
        .context("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let authority = uri.authority().context("no host")?.as_str().to_string();
    let mut builder = match &req.form {
        None => http::Request::get(path),
        Some(_) => http::Request::post(path).header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        ),
    }
    .header(http::header::HOST, authority)
    .header(http::header::ACCEPT, "application/json, */*");
    if let Some(auth) = &req.authorization {
        builder = builder.header(http::header::AUTHORIZATION, auth);
    }
    let request = builder.body(Full::new(Bytes::from(req.form.unwrap_or_default())))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let resp = if secure {
            let tls = tls.context("no TLS configuration for https://")?;
            let name = ServerName::try_from(host.clone()).context("not a host name")?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await?;
            exchange(TokioIo::new(stream), request).await?
        } else {
            exchange(TokioIo::new(tcp), request).await?
        };
        if !resp.status().is_success() {
            bail!("HTTP {}", resp.status());
        }
        let body = Limited::new(resp.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|_| anyhow::anyhow!("larger than {max_bytes} bytes or interrupted"))?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))?
}

async fn exchange<S>(
    io: TokioIo<S>,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<http::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(request).await?)
}
