//! Exit status decoding.

/// Decode a wait status as liblxc reports it in `error_num` after a foreground start
/// into a containerd-style exit code: 0-255 for a normal exit, 128+signal for a
/// process killed by a signal.
///
/// liblxc reports an init killed by a signal in a stop-code-like form
/// (`(sig << 8) | 0x7f`, e.g. 0x97f for SIGKILL), not as a plain wait status; both
/// forms are decoded.
pub fn decode_wait_status(status: i32) -> i32 {
    let low = status & 0x7f;
    if low == 0 {
        (status >> 8) & 0xff
    } else if low == 0x7f {
        128 + ((status >> 8) & 0xff)
    } else {
        128 + low
    }
}

#[cfg(test)]
mod tests {
    use super::decode_wait_status;

    #[test]
    fn exited() {
        assert_eq!(decode_wait_status(0), 0);
        assert_eq!(decode_wait_status(0x700), 7);
        assert_eq!(decode_wait_status(0xff00), 255);
    }

    #[test]
    fn liblxc_signal_form() {
        assert_eq!(decode_wait_status(0x97f), 137);
        assert_eq!(decode_wait_status(0xf7f), 143);
    }

    #[test]
    fn plain_signaled() {
        assert_eq!(decode_wait_status(9), 137);
        assert_eq!(decode_wait_status(15 | 0x80), 143); // core dumped bit
    }
}
