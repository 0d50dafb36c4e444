//! Command-line flags and the YAML configuration file (being written).
