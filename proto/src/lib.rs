//! Cairn's gRPC protocol: the generated messages, clients and servers of every service.
//!
//! The three server crates (`cairn-meta`, `cairn-blob`, `cairn-gateway`) never import one
//! another; this crate is where they meet. Modules mirror the protobuf packages so that
//! cross-package references in generated code resolve; use the short re-exports below.
// No unwrap()/expect() outside tests: what input, the network or a disk can reach must
// return an error, never panic. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    pub mod cairn {
        pub mod blob {
            pub mod v1 {
                tonic::include_proto!("cairn.blob.v1");
            }
        }
        pub mod meta {
            pub mod v1 {
                tonic::include_proto!("cairn.meta.v1");
            }
        }
        pub mod admin {
            pub mod v1 {
                tonic::include_proto!("cairn.admin.v1");
            }
        }
    }
}

/// The cluster administration API (`proto/admin.proto`), format family v1.
pub use generated::cairn::admin::v1 as admin;
/// The blob server's API (`proto/blob.proto`), format family v1.
pub use generated::cairn::blob::v1 as blob;
/// The metadata service's API and Raft transport (`proto/meta.proto`), format family v1.
pub use generated::cairn::meta::v1 as meta;

/// `host:port` or `scheme://host:port` -> a URI a gRPC endpoint accepts (`http://` assumed):
/// every role takes peer addresses in either form.
pub fn endpoint_uri(raw: &str) -> String {
    if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    }
}

pub mod admin_auth;
pub mod call_outcome;
pub mod cluster_token;
pub mod iam;
pub mod lifecycle;
pub mod local;
