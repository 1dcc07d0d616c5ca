//! # ProBFT — probabilistic BFT with VRF-sampled quorums (Avelãs et al., PODC 2024)
//!
//! See [`vrf`] for the RFC 9381 VRF.

pub mod vrf;
