//! dnsmasq (Debian's `dnsmasq-base`) as a DNS server on a loopback port, serving the records a
//! test gives it and nothing else: names under `example.test` it does not know get NXDOMAIN,
//! names elsewhere get REFUSED (it has no upstream). Local records have TTL 0.
//!
//! `start` returns once the server answers; `restart_with` serves other records on the same
//! port (dnsmasq reads command-line records only at start). Dropping it kills the process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use promrelay::scrape::config::DnsRecordType;
use promrelay::scrape::discovery::dns::{DnsResolver, lookup};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::{free_port, kill_and_reap, log_tail, peer_binary, spawn_logged};

/// The domain dnsmasq answers for with authority (NXDOMAIN for names it does not know).
pub const DOMAIN: &str = "example.test";
/// A name every server answers, so a test knows it is up.
const READY_NAME: &str = "ready.example.test";

/// One record to serve.
#[derive(Clone, Debug)]
pub enum Record {
    /// `name SRV 0 0 port target`.
    Srv {
        name: String,
        target: String,
        port: u16,
    },
    /// A and AAAA records of `name`, one per address.
    Host { name: String, addrs: Vec<String> },
    /// `name MX preference host`.
    Mx {
        name: String,
        host: String,
        preference: u16,
    },
}

impl Record {
    /// The dnsmasq flags that serve it (one `--host-record` per address: a flag takes at most
    /// one address of each family).
    fn args(&self) -> Vec<String> {
        match self {
            Record::Srv { name, target, port } => {
                vec![format!("--srv-host={name},{target},{port},0,0")]
            }
            Record::Host { name, addrs } => addrs
                .iter()
                .map(|addr| format!("--host-record={name},{addr}"))
                .collect(),
            Record::Mx {
                name,
                host,
                preference,
            } => vec![format!("--mx-host={name},{host},{preference}")],
        }
    }
}

pub fn srv(name: &str, target: &str, port: u16) -> Record {
    Record::Srv {
        name: name.into(),
        target: target.into(),
        port,
    }
}

pub fn host(name: &str, addrs: &[&str]) -> Record {
    Record::Host {
        name: name.into(),
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
    }
}

pub fn mx(name: &str, host: &str, preference: u16) -> Record {
    Record::Mx {
        name: name.into(),
        host: host.into(),
        preference,
    }
}

/// A running dnsmasq.
pub struct Dnsmasq {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Dnsmasq {
    /// Starts dnsmasq serving `records` on a free loopback port and waits until it answers.
    pub async fn start(records: &[Record]) -> Dnsmasq {
        let dir = tempfile::Builder::new()
            .prefix("promrelay-peer-dnsmasq-")
            .tempdir()
            .expect("create a temporary directory for dnsmasq");
        let mut server = Dnsmasq {
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..3 {
            server.port = free_port();
            if server.launch(records).await {
                return server;
            }
        }
        panic!(
            "dnsmasq found its port taken 3 times; log tail:\n{}",
            server.log_tail()
        );
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A resolver that asks this server only.
    pub fn resolver(&self) -> DnsResolver {
        DnsResolver::at(self.addr())
    }

    /// Stops the server and starts it again on the same port with `records` instead.
    pub async fn restart_with(&mut self, records: &[Record]) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
        assert!(
            self.launch(records).await,
            "dnsmasq could not take its port {} again; log tail:\n{}",
            self.port,
            self.log_tail()
        );
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("peer.log")
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log())
    }

    /// Starts the process on `self.port`; false when the port was taken.
    async fn launch(&mut self, records: &[Record]) -> bool {
        let mut command = Command::new(peer_binary("dnsmasq"));
        command.args([
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            format!("--port={}", self.port),
            "--listen-address=127.0.0.1".to_owned(),
            "--bind-interfaces".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--pid-file=".to_owned(),
            "--log-facility=-".to_owned(),
            format!("--local=/{DOMAIN}/"),
            "--local-ttl=0".to_owned(),
            format!("--host-record={READY_NAME},127.0.0.9"),
        ]);
        command.args(records.iter().flat_map(Record::args));
        self.child = Some(spawn_logged(&mut command, &self.log(), "dnsmasq"));
        let resolver = self.resolver();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let child = self.child.as_mut().expect("launched");
            if child.try_wait().expect("poll dnsmasq").is_some() {
                self.child = None;
                let log = std::fs::read_to_string(self.log()).unwrap_or_default();
                let this_start = log.rsplit(super::START_BANNER).next().unwrap_or_default();
                if this_start.contains("Address already in use") {
                    return false;
                }
                panic!("dnsmasq exited at start; log tail:\n{}", self.log_tail());
            }
            // TCP first: a UDP query sent before dnsmasq binds waits for the resolver's timeout.
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok()
                && lookup(&resolver, READY_NAME, DnsRecordType::A, 1)
                    .await
                    .is_ok_and(|targets| !targets.is_empty())
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not answer within 30s; log tail:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }
}
