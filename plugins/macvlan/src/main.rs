//! `netctl-macvlan`: the CNI plugin behind Docker-style macvlan networks.

fn main() {
    netctl_macvlan::run()
}
