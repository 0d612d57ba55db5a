//! Loopback fixtures: a tiny HTTP/1.1 server with fixed routes and a UDP DNS server answering TXT queries.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tether_core::Url;
use tether_provider_bluesky::ResolverConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// One canned HTTP response.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` (otherwise the body ends when the connection closes).
    pub content_length: bool,
}

impl Reply {
    pub fn json(body: impl Into<String>) -> Self {
        Reply::with("application/json", 200, body.into().into_bytes())
    }

    pub fn text(body: &str) -> Self {
        Reply::with("text/plain", 200, body.as_bytes().to_vec())
    }

    pub fn with(content_type: &str, status: u16, body: Vec<u8>) -> Self {
        Reply { status, headers: vec![("content-type", content_type.to_owned())], body, content_length: true }
    }

    pub fn redirect(to: &str) -> Self {
        Reply { status: 302, headers: vec![("location", to.to_owned())], body: Vec::new(), content_length: true }
    }
}

/// Serves `routes` (path → reply; anything else is 404) on a loopback port; returns `http://127.0.0.1:<port>`.
pub async fn serve(routes: Vec<(&str, Reply)>) -> Url {
    let routes: BTreeMap<String, Reply> = routes.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("address: {e}"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let reply =
                    routes.get(&path).cloned().unwrap_or_else(|| Reply::with("text/plain", 404, b"Not Found".to_vec()));
                let mut out = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
                for (name, value) in &reply.headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                if reply.content_length {
                    out.push_str(&format!("content-length: {}\r\n", reply.body.len()));
                }
                out.push_str("\r\n");
                let _ = stream.write_all(out.as_bytes()).await;
                let _ = stream.write_all(&reply.body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Url::parse(&format!("http://{address}")).unwrap_or_else(|e| panic!("{e}"))
}

/// Answers TXT queries from `records` (lower-case name without trailing dot → TXT strings); other names get
/// NXDOMAIN. Returns the server address.
pub async fn dns(records: Vec<(&str, Vec<&str>)>) -> SocketAddr {
    let records: BTreeMap<String, Vec<String>> =
        records.into_iter().map(|(n, v)| (n.to_owned(), v.into_iter().map(str::to_owned).collect())).collect();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let address = socket.local_addr().unwrap_or_else(|e| panic!("address: {e}"));
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(answer) = answer(&buf[..n], &records) {
                let _ = socket.send_to(&answer, peer).await;
            }
        }
    });
    address
}

fn answer(query: &[u8], records: &BTreeMap<String, Vec<String>>) -> Option<Vec<u8>> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question = query.get(12..pos + 4)?;
    let found = records.get(&labels.join("."));
    let txts: &[String] = match (found, qtype) {
        (Some(txts), 16) => txts,
        _ => &[],
    };
    let rcode = if found.is_none() { 3 } else { 0 };
    let mut out = Vec::new();
    out.extend_from_slice(query.get(0..2)?);
    out.extend_from_slice(&[0x81, 0x80 | rcode]);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(txts.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    for txt in txts {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
        let data: Vec<u8> = std::iter::once(txt.len() as u8).chain(txt.bytes()).collect();
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}

/// A config that reaches only loopback: the PLC directory, each logical host and the DNS server.
pub fn config(plc: &Url, hosts: &[(&str, &Url)], dns: SocketAddr) -> ResolverConfig {
    ResolverConfig {
        plc_directory: plc.clone(),
        host_overrides: hosts.iter().map(|(h, u)| ((*h).to_owned(), (*u).clone())).collect(),
        dns_nameserver: Some(dns),
        timeout: Duration::from_secs(3),
        max_body_bytes: 64 * 1024,
        allow_insecure_loopback: false,
    }
}
