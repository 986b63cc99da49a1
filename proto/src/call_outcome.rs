//! What a failed gRPC call says about whether the request reached its server.
//!
//! A write must not be sent again if its first attempt may have been applied (it could then
//! take effect twice, the second time after later writes). Only a call that never left this
//! process is certainly not applied; the gateway's meta client and the meta service's
//! forwarding both decide with this one test.

/// Whether `status` is a transport failure raised while connecting (refused, unreachable,
/// the channel never ready), before any request bytes went out.
pub fn failed_before_sending(status: &tonic::Status) -> bool {
    let msg = status.message().to_ascii_lowercase();
    [
        "connection refused",
        "trying to connect",
        "tcp connect error",
        "not ready",
    ]
    .iter()
    .any(|needle| msg.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connect_failures_count_as_never_sent() {
        assert!(failed_before_sending(&tonic::Status::unavailable(
            "error trying to connect: tcp connect error: Connection refused (os error 111)"
        )));
        assert!(failed_before_sending(&tonic::Status::unknown(
            "Service was not ready: transport error"
        )));
        assert!(!failed_before_sending(&tonic::Status::cancelled(
            "Timeout expired"
        )));
        assert!(!failed_before_sending(&tonic::Status::unknown(
            "transport error: connection reset by peer"
        )));
    }
}
