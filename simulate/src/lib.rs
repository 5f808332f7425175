//! snn-simulate
