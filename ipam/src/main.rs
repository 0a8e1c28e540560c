//! `netctl-ipam`: the CNI IPAM plugin.

fn main() {
    netctl_ipam::plugin::run()
}
