//! `kubectl dbiso`: each service owns its database.
//!
//! Discovery finds databases ([`discover`]), ownership maps which services reference them
//! ([`owners`]); reachability under NetworkPolicy comes from [`crate::netpol`].

pub mod discover;
pub mod owners;
