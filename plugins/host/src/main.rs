//! `netctl-host`: the CNI plugin behind `--net host`.

fn main() {
    netctl_host::run()
}
