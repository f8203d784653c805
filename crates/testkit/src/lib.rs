//! Dev-only harness: real Prometheus, moto and certificates for integration tests.
