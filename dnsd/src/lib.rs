//! `netctl-dnsd`: the DNS server for container networks. It answers container names, short
//! IDs and aliases with round-robin A/AAAA records, PTR for container addresses, and
//! forwards everything else upstream, from the records of [`netctl_dnsrecords`].

pub mod server;

pub use netctl_dnsrecords::{DnsError, DnsPaths, Record};
