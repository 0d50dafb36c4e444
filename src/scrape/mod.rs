//! Scraping: scrape config, discovery, sharding, one loop per target, stale markers (see
//! `design.md`). The bodies it fetches are parsed and turned into series by
//! [`crate::exposition`]; the series go to the storages through [`crate::forward::Fanout`], the
//! same entry ingest uses.
//!
//! Must not: write to queues except through that fan-out, or know about admin pages (the status
//! it exposes, [`manager::TargetsView`], is read by the `admin` module).
//!
//! - [`cache`]: a target's scrape cache: series text to encoded labels, the previous batch.
//! - `client`: a job's or discovery's HTTP settings as outbound client options and header.
//! - [`config`]: the Prometheus scrape config file (`--scrape-config`), resolved into jobs.
//! - [`discovery`]: `static_configs` and `file_sd_configs` as target groups, watched for changes.
//! - [`manager`]: the scraper: config, discovery, one loop per owned target, reload.
//! - [`outbox`]: many scrapes' batches gathered into one block, compressed and queued.
//! - [`scrape_loop`]: one target's loop: fetch, parse, report series, stale markers.
//! - [`targets`]: targets from groups as Prometheus' `PopulateLabels` builds them, sharded.
//! - [`sharding`]: vmagent 1.79's cluster sharding key and member assignment.

pub mod cache;
pub(crate) mod client;
pub mod config;
pub mod discovery;
pub mod manager;
pub mod outbox;
pub mod scrape_loop;
pub mod sharding;
pub mod targets;
