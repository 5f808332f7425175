//! snn-analysis
