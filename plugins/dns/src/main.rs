//! `netctl-dns`: the chained CNI plugin that registers containers with `netctl-dnsd`.

fn main() {
    netctl_dns::run()
}
