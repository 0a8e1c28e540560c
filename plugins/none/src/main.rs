//! `netctl-none`: the CNI plugin behind `--net none`.

fn main() {
    netctl_none::run()
}
