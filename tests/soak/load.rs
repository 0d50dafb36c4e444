//! The load generator: several connections pushing numbered samples, each identifiable, and a
//! record of exactly which ones the relay acknowledged (answered 2xx).
//!
//! Connection `c` pushes requests of `SERIES` series `soak_seq{conn="c",s="k"}`, one sample each,
//! all with the push's timestamp (strictly increasing per connection) and its sequence number as
//! value. A sample is identified by `(conn, s, timestamp)`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promrelay::prompb::{Label, Sample, TimeSeries, WriteRequest, compress};
use prost::Message;

/// Series per push.
pub const SERIES: usize = 10;
/// The metric name of every numbered sample.
pub const METRIC: &str = "soak_seq";

/// A sample's identity: connection, series, timestamp.
pub type SampleId = (u32, u32, i64);

/// What the generator saw.
#[derive(Default)]
pub struct Record {
    /// Samples whose push was answered 2xx.
    pub acked: HashSet<SampleId>,
    /// Pushes answered otherwise (refused, connection failed), by status (0: no answer).
    pub refused_pushes: std::collections::BTreeMap<u16, u64>,
}

/// The running generator.
pub struct Load {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `conns` connections pushing to `url` every `pause`.
    pub fn start(url: String, conns: u32, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let tasks = (0..conns)
            .map(|conn| {
                let (url, stop, record) = (url.clone(), Arc::clone(&stop), Arc::clone(&record));
                tokio::spawn(async move { push_loop(conn, url, pause, stop, record).await })
            })
            .collect();
        Load {
            stop,
            record,
            tasks,
        }
    }

    /// Stops every connection (after its push in flight) and returns the record.
    pub async fn stop(self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a push loop panicked");
        }
        std::mem::take(&mut *self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One push of connection `conn`: its request, snappy-compressed.
pub fn body(conn: u32, seq: u64, ts: i64) -> Vec<u8> {
    let timeseries = (0..SERIES)
        .map(|s| TimeSeries {
            labels: vec![
                Label::new("__name__", METRIC),
                Label::new("conn", conn.to_string()),
                Label::new("s", s.to_string()),
            ],
            samples: vec![Sample {
                value: seq as f64,
                timestamp: ts,
            }],
            ..Default::default()
        })
        .collect();
    compress(
        &WriteRequest {
            timeseries,
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

async fn push_loop(
    conn: u32,
    url: String,
    pause: Duration,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let mut last_ts = 0i64;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let ts = super::common::now_ms().max(last_ts + 1);
        last_ts = ts;
        seq += 1;
        let answer = http
            .post(&url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body(conn, seq, ts))
            .send()
            .await;
        let status = answer.as_ref().map_or(0, |a| a.status().as_u16());
        {
            let mut r = record.lock().unwrap_or_else(|p| p.into_inner());
            if (200..300).contains(&status) {
                r.acked.extend((0..SERIES as u32).map(|s| (conn, s, ts)));
            } else {
                *r.refused_pushes.entry(status).or_default() += 1;
            }
        }
        tokio::time::sleep(pause).await;
    }
}
