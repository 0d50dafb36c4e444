//! Prometheus relabeling (being written).
